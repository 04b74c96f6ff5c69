"""The LODE callback's resumable state: one JSON file, written at every log point.

Callbacks are not saved with a model, so `LODECallback` keeps what it needs to continue a
fit resumed by `keras.callbacks.BackupAndRestore` (the observed history and every plan it
applied) in a strict-JSON file, written atomically.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np

from keras_lode._json import write_json
from keras_lode._warnings import warn

__all__ = ["STATE_FORMAT", "STATE_VERSION", "read_state", "resume", "write_state"]

logger = logging.getLogger(__name__)

STATE_FORMAT = "keras_lode.callback_state"
STATE_VERSION = 1


def _json_floats(a) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.ravel(a).tolist()]


def _from_json_floats(values, shape=None) -> np.ndarray:
    arr = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return arr.reshape(shape) if shape is not None else arr


def write_state(
    path, run: dict, warmup, history, replans: dict, finished: bool, switches=()
) -> None:
    """Writes the state; a failure is logged, never raised into the fit.

    Args:
        path: the JSON file.
        run: what identifies the run (`total_points`, `points_per_epoch`,
            `steps_per_epoch`, `seed`) and the cadence (`window`, `replan_every`).
        warmup: (K,) warm-up LR per log point.
        history: (K, 3) observed `[loss, ln lr, metric]` (NaN: not yet).
        replans: `{log point: LRs applied after it}`.
        finished: whether the fit ended.
        switches: the log points whose replan left the plan in effect (a kept default is
            a replan too; a resumed fit must know which were switches).
    """
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        **run,
        "warmup": _json_floats(warmup),
        "history": _json_floats(history),
        "replans": {str(n): _json_floats(v) for n, v in sorted(replans.items())},
        "switches": sorted(int(n) for n in switches),
        "finished": finished,
    }
    try:
        # Strict JSON, written to a temporary file and renamed, with the usual file mode.
        write_json(path, state, indent=None)
    except (OSError, ValueError) as e:
        logger.warning("LODECallback could not write its state to %s: %s", path, e)


def read_state(
    path, expect: dict
) -> tuple[np.ndarray, dict[int, np.ndarray], list[int], np.ndarray]:
    """Reads the history, the replans, the switches and the warm-up of a state written for
    the run `expect` names (a state of an older version has no switches: an empty list).

    Raises:
        OSError, ValueError, KeyError, TypeError: an unreadable file, another format, or
            a state of another run (the message says which).
    """
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"format {state.get('format')!r}, expected {STATE_FORMAT!r}")
    found = {k: state.get(k) for k in expect}
    if found != expect:
        raise ValueError(f"state is for another run: {found}, expected {expect}")
    history = _from_json_floats(state["history"], (expect["total_points"], 3))
    replans = {int(k): _from_json_floats(v) for k, v in state["replans"].items()}
    warmup = _from_json_floats(state["warmup"])
    return history, replans, [int(n) for n in state.get("switches", [])], warmup


def resume(path, identity: dict, cut: int, history: np.ndarray, tables) -> tuple | None:
    """Restores a fit's history and plans before log point `cut` from its state file.

    Args:
        path: the state file.
        identity: what the state must have been written for (see `read_state`).
        cut: the first log point of the resumed epoch (what came before is kept).
        history: (K, 3) history of the fit, filled in before `cut`.
        tables: the fit's `PlanTables`, set back to the warm-up and the saved plans.

    Returns:
        `({log point: LRs}, switches)`: the replans restored and the log points among them
        that switched, or None (after a `LODEWarning`) when there is no usable state: the
        fit then follows the warm-up.
    """
    if not path.exists():
        warn(
            f"LODECallback: the fit resumes at log point {cut} but there is no state file "
            f"{str(path)!r}; following the warm-up until a window of new points exists."
        )
        return None
    try:
        saved_history, replans, switches, warmup = read_state(path, identity)
    except (OSError, ValueError, KeyError, TypeError) as e:
        warn(
            f"LODECallback: could not resume from {str(path)!r} ({e}); starting a new "
            "plan from the warm-up."
        )
        return None
    history[:cut] = saved_history[:cut]
    if not tables.per_step and warmup.shape == tables.warmup_table.shape:
        # A float LR's warm-up was read from the optimizer, which a restore set to the
        # plan's LR: the fit's own warm-up is the one it saved.
        tables.warmup_table = warmup
    tables.restart()
    kept = {}
    for n in sorted(replans):
        if n < cut and len(replans[n]) == identity["total_points"] - n - 1:
            kept[n] = replans[n]
            tables.replace(n + 1, replans[n])  # replayed as the fit applied it
    logger.info("LODECallback resumed from %s at log point %d.", path, cut)
    return kept, [n for n in switches if n in kept]
