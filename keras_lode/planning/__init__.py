"""The planning stage: from a model and a window of the current run to a new LR plan.

`plan` dispatches on `model.kind`: a generative (paper) LODE goes to the paper's planner
(`keras_lode.planning.generative`, result `Plan`), a controlled LODE to the control planner
(`keras_lode.planning.control`, result `ControlPlan`), which scores the candidate schedules
of `keras_lode.planning.candidates`. `derive_seed` gives the per-call seeds; `plot_plan`
(`keras_lode.planning.plot`, needs matplotlib) draws either kind of plan. Pure NumPy:
nothing here imports Keras or torch.
"""

from __future__ import annotations

import inspect

from keras_lode.planning.candidates import TrustRegion, candidate_library
from keras_lode.planning.control import CONTROL_DEFAULTS, ControlPlan, plan_control
from keras_lode.planning.generative import DEFAULTS, plan_generative
from keras_lode.planning.plan import Plan, derive_seed

__all__ = [
    "CONTROL_DEFAULTS",
    "DEFAULTS",
    "ControlPlan",
    "Plan",
    "TrustRegion",
    "candidate_library",
    "derive_seed",
    "plan",
    "plan_control",
    "plan_generative",
    "planner_options",
]

# Arguments every planner call gets from its caller rather than as an option.
_CALL = ("model", "window", "position", "total_points", "current_plan", "seed", "points_per_epoch")


def _kind(model) -> str:
    """`"controlled"` or `"generative"` (objects without a `kind` are generative)."""
    kind = getattr(model, "kind", "generative")
    if kind not in ("controlled", "generative"):
        raise ValueError(f"Unknown model kind {kind!r}; expected 'controlled' or 'generative'")
    return kind


def planner_options(kind: str = "generative") -> tuple[str, ...]:
    """The option names `plan` accepts for a model of this kind."""
    fn = plan_control if kind == "controlled" else plan_generative
    return tuple(n for n in inspect.signature(fn).parameters if n not in _CALL)


def plan(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    seed: int | None = None,
    points_per_epoch: int | None = None,
    **options,
):
    """Plan the LR for the rest of a run; the planner follows the model's kind.

    Example:

    ```python
    p = keras_lode.plan(model, window, position=n, total_points=600, seed=0)
    p.lr            # LR for log points n+1 .. 599
    print(p.summary())
    ```

    Args:
        model: a `LatentODE` (paper planner) or a `ControlledODE` (control planner).
        window: (W, 3) raw `[loss, ln lr, metric]` at points `position - W + 1 .. position`.
        position: current log point `n`.
        total_points: number of log points `K` of the run.
        current_plan: LRs the run follows from here (the paper's planner keeps them when
            nothing is accepted; the control planner scores them as its default).
        seed: seed of the paper's planner's noise (the control planner draws none).
        points_per_epoch: the run's P, if known (horizon-mapping warning).
        **options: options of `plan_generative` or `plan_control`
            (`planner_options(kind)` lists them).

    Returns:
        A `Plan` (generative) or a `ControlPlan` (controlled).

    Raises:
        TypeError: an option the model's planner does not have.
    """
    kind = _kind(model)
    allowed = planner_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"Unknown option(s) {unknown} for the {kind} planner; expected some of {list(allowed)}"
        )
    common = dict(
        position=position,
        total_points=total_points,
        current_plan=current_plan,
        points_per_epoch=points_per_epoch,
    )
    if kind == "controlled":
        return plan_control(model, window, **common, **options)
    return plan_generative(model, window, seed=seed, **common, **options)
