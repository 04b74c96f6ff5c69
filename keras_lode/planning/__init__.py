"""The planning stage: from a model and a window of the current run to a new LR plan.

`plan` dispatches on `model.kind`: a generative (paper) LODE goes to the paper's planner
(`keras_lode.planning.generative`, options `GenerativeOptions`), a controlled LODE to the
control planner (`keras_lode.planning.control`, options `ControlOptions`), which scores the
candidate schedules of `keras_lode.planning.candidates`. Their results, `Plan` and
`ControlPlan`, live in `keras_lode.planning.plans`; what both planners share (argument
checks, option resolution, the horizon mapping) in `keras_lode.planning.common`.
`derive_seed` (`keras_lode.planning.replans`) gives the per-call seeds; `plot_plan`
(`keras_lode.planning.plot`, needs matplotlib) draws either kind of plan. Pure NumPy:
nothing here imports Keras or torch.
"""

from __future__ import annotations

from keras_lode.model.features import is_task_free
from keras_lode.planning.candidates import TrustRegion, candidate_library
from keras_lode.planning.common import option_names
from keras_lode.planning.control import CONTROL_DEFAULTS, ControlOptions, plan_control
from keras_lode.planning.generative import DEFAULTS, GenerativeOptions, plan_generative
from keras_lode.planning.plans import ControlPlan, Plan
from keras_lode.planning.relative import plan_relative
from keras_lode.planning.replans import derive_seed

__all__ = [
    "CONTROL_DEFAULTS",
    "DEFAULTS",
    "ControlOptions",
    "ControlPlan",
    "GenerativeOptions",
    "Plan",
    "TrustRegion",
    "candidate_library",
    "derive_seed",
    "plan",
    "plan_control",
    "plan_generative",
    "plan_relative",
    "planner_options",
]


def _kind(model) -> str:
    """`"controlled"` or `"generative"` (objects without a `kind` are generative)."""
    kind = getattr(model, "kind", "generative")
    if kind not in ("controlled", "generative"):
        raise ValueError(f"Unknown model kind {kind!r}; expected 'controlled' or 'generative'")
    return kind


def planner_options(kind: str = "generative") -> tuple[str, ...]:
    """The option names `plan` accepts for a model of this kind.

    Args:
        kind: `"controlled"` (the fields of `ControlOptions`) or anything else (those of
            `GenerativeOptions`).

    Returns:
        The names, in the fields' order.
    """
    return option_names(ControlOptions if kind == "controlled" else GenerativeOptions)


def plan(
    model,
    window,
    *,
    position: int,
    total_points: int,
    current_plan=None,
    seed: int | None = None,
    points_per_epoch: int | None = None,
    mode: str = "max",
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
        window: (W, 3) raw `[loss, ln lr, metric]` at points `position - W + 1 .. position`;
            for a task-free model (`model.features == "relative"`, `plan_relative`) the
            whole history, points `0 .. position`.
        position: current log point `n`.
        total_points: number of log points `K` of the run.
        current_plan: LRs the run follows from here (the paper's planner keeps them when
            nothing is accepted; the control planner scores them as its default).
        seed: seed of the paper's planner's noise (the control planner draws none).
        points_per_epoch: the run's P, if known (horizon-mapping warning).
        mode: the run's metric direction, `"max"` or `"min"`; a task-free model reads the
            metric's improvement in it (a task's own model has its own `mode`).
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
    if kind == "controlled" and is_task_free(model):
        return plan_relative(
            model, window, position=position, total_points=total_points,
            current_plan=current_plan, mode=mode, **options,
        )  # fmt: skip
    if kind == "controlled":
        return plan_control(model, window, **common, **options)
    return plan_generative(model, window, seed=seed, **common, **options)
