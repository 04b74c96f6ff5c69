"""The LODE callback's options: checked once, resolved against the model's defaults.

`LODECallback(model, validation_data=..., **options)` takes the callback's own options
(`CallbackOptions`) and the planner's (`keras_lode.planning.planner_options(kind)`) as
keyword arguments; `resolve_options` checks them all and fills in the model's defaults.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_lode._checks import check_int
from keras_lode.model.features import is_task_free

__all__ = ["CallbackOptions", "resolve_model", "resolve_options", "check_warmup", "check_seed"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class CallbackOptions:
    """The options of `LODECallback` besides the model, data, warm-up and seed.

    `None` takes the model's default.

    Attributes:
        points_per_epoch: log points per epoch P; default the model's, else 10.
        window: context window in log points; default the model's.
        replan_every: every k log points (an int) or every fraction of the run (a float in
            (0, 1]); default the model's, else P, or 0.1 of the run for a controlled model.
        first_replan: a log point or a fraction of the run; default as soon as `window`
            points exist, 0.2 of the run for a controlled model.
        plot_dir: a figure of each replan goes there (needs matplotlib).
        validation_samples: size of the fixed validation subset (256; its measurement is
            nearly all of the callback's cost).
        validation_batch_size: None: the backend's cheapest.
        metric: `"accuracy"` or a callable `metric(y_true, y_pred) -> float`: the metric
            the LODE was trained on.
        planning: False follows the warm-up only (a matched baseline arm).
        task: the fit's task name: a `LODEWarning` when it is not the model's task, as
            `keras-lode plan` warns.
        mode: `"max"` or `"min"`, as Keras callbacks take it: the metric's direction, which
            must be the model's (a task-free model takes either); default the model's.
        anchor_strangers: True (the default): a fit that the checks find unlike the
            model's training runs (by its channels, its task, or the model's miss of the
            current metric) gets one warning and keeps its warm-up for the rest of the fit;
            plans are still made and logged. False follows them anyway.
    """

    points_per_epoch: int | None = None
    window: int | None = None
    replan_every: int | float | None = None
    first_replan: int | float | None = None
    plot_dir: str | os.PathLike | None = None
    validation_samples: int = 256
    validation_batch_size: int | None = None
    metric: str | Callable = "accuracy"
    planning: bool = True
    task: str | None = None
    mode: str | None = None
    anchor_strangers: bool = True


def resolve_model(model):
    """The LODE itself: loaded from a path (None: the pretrained zoo model,
    `keras_lode.pretrained`), checked to have its kind's interface."""
    if model is None:
        from keras_lode.pretrained import zoo_model_path

        model = zoo_model_path()
        logger.info("LODECallback: no model given; the pretrained zoo model %s plans", model)
    if isinstance(model, str | os.PathLike):
        from keras_lode.model import load_model

        model = load_model(model)
    kind = getattr(model, "kind", "generative")
    needs = ("predict", "spread") if kind == "controlled" else ("encode", "decode")
    if not all(hasattr(model, a) for a in needs):
        raise TypeError(
            "Argument `model` must be a LODE model file path, a LatentODE (with "
            "encode/decode) or a ControlledODE (with predict/spread). Received: "
            f"{type(model).__name__} of kind {kind!r}"
        )
    return model, kind


def resolve_options(model, kind: str, options: dict) -> tuple[CallbackOptions, dict]:
    """Splits `options` into the callback's (defaults filled in) and the planner's.

    Raises:
        TypeError: an option that is neither the callback's nor the planner's.
        ValueError: an out-of-range value (named in the message).
    """
    from keras_lode.model.defaults import CONTROL_DEFAULTS, GENERATIVE_DEFAULTS
    from keras_lode.planning import planner_options

    own = {f.name for f in dataclasses.fields(CallbackOptions)}
    allowed = planner_options(kind)
    unknown = sorted(set(options) - own - set(allowed))
    if unknown:
        raise TypeError(
            f"Unknown planner option(s) {unknown} for LODECallback. Expected some of the "
            f"{kind} planner's {list(allowed)} or the callback's {sorted(own)}."
        )
    opts = CallbackOptions(**{k: v for k, v in options.items() if k in own})
    planner = {k: v for k, v in options.items() if k not in own}
    defaults = dict(getattr(model, "planner_defaults", None) or {})
    relative = is_task_free(model)
    if opts.points_per_epoch is None:  # a task-free model's P is its grid's, not a fit's
        opts.points_per_epoch = (
            None if relative else getattr(model, "points_per_epoch", None)
        ) or 10
    if opts.window is None:
        if kind == "controlled":
            opts.window = int(model.window)
        else:
            opts.window = defaults.get("window") or GENERATIVE_DEFAULTS["window"]
    opts.window = check_int("window", opts.window)
    if kind == "controlled" and opts.window < int(model.window):
        raise ValueError(
            f"Argument `window` ({opts.window}) is shorter than the controlled model's "
            f"encoder window ({int(model.window)} log points): it could never plan. Leave "
            "it unset to use the model's."
        )
    if opts.replan_every is None:
        opts.replan_every = defaults.get("replan_every")
        if opts.replan_every is None:
            opts.replan_every = (
                CONTROL_DEFAULTS["replan_every"] if kind == "controlled" else opts.points_per_epoch
            )
    if opts.first_replan is None and kind == "controlled":
        opts.first_replan = defaults.get("first_replan")
        if opts.first_replan is None:
            opts.first_replan = CONTROL_DEFAULTS["first_replan"]
    opts.replan_every = cadence_arg("replan_every", opts.replan_every, high=1.0)
    if opts.first_replan is not None:
        opts.first_replan = cadence_arg("first_replan", opts.first_replan)
    if opts.plot_dir is not None:
        opts.plot_dir = Path(opts.plot_dir)
    model_mode = getattr(model, "mode", "max")
    if opts.mode is None:
        opts.mode = model_mode
    if opts.mode not in ("max", "min"):
        raise ValueError(f"Argument `mode` must be 'max' or 'min'. Received: mode={opts.mode!r}")
    if opts.mode != model_mode and not relative:  # a task-free model serves both directions
        raise ValueError(
            f"Argument `mode` is {opts.mode!r} but the model's metric is "
            f"{'maximized' if model_mode == 'max' else 'minimized'} (mode {model_mode!r}): "
            "use a model trained on runs of this metric."
        )
    if opts.task is not None and not isinstance(opts.task, str):
        raise TypeError(f"Argument `task` must be a task name (str). Received: {opts.task!r}")
    if not isinstance(opts.anchor_strangers, bool):
        raise TypeError(
            f"Argument `anchor_strangers` must be a bool. Received: {opts.anchor_strangers!r}"
        )
    if not isinstance(opts.planning, bool):
        raise TypeError(f"Argument `planning` must be a bool. Received: {opts.planning!r}")
    return opts, planner


def cadence_arg(name: str, value, high: float = 1.0 - 1e-12):
    """A log-point count (int) or a float fraction of the run in (0, high]."""
    if isinstance(value, float | np.floating):
        if not (math.isfinite(value) and 0 < value <= high):
            raise ValueError(
                f"Argument `{name}` as a fraction of the run must be in (0, {high:.3g}]. "
                f"Received: {value!r}"
            )
        return float(value)
    if name == "first_replan":
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(
                f"Argument `{name}` must be a log point (int >= 0) or a fraction of the "
                f"run (float). Received: {value!r}"
            )
        return int(value)
    return check_int(name, value)


def check_warmup(warmup):
    """The warm-up argument: None, a positive float, or a callable `step -> lr`."""
    if warmup is not None and not (
        callable(warmup) or (isinstance(warmup, int | float) and not isinstance(warmup, bool))
    ):
        raise TypeError(
            "Argument `warmup` must be a float, a LearningRateSchedule or a callable "
            f"step -> lr. Received: warmup={warmup!r}"
        )
    if isinstance(warmup, int | float) and not (math.isfinite(warmup) and warmup > 0):
        raise ValueError(f"Argument `warmup` must be finite and > 0. Received: {warmup!r}")
    return warmup


def check_seed(seed) -> int:
    """A non-negative int seed; None draws one."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"Argument `seed` must be a non-negative int. Received: {seed!r}")
    return int(seed)
