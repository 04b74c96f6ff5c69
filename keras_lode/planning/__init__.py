"""The planning stage: from a model and a window of the current run to a new LR plan.

`plan` is the planner, `Plan` its result, `derive_seed` the per-call seeds; `plot_plan`
(`keras_lode.planning.plot`, needs matplotlib) draws a plan. Pure NumPy: nothing here
imports Keras or torch.
"""

from keras_lode.planning.plan import Plan, derive_seed
from keras_lode.planning.planner import DEFAULTS, plan

__all__ = ["DEFAULTS", "Plan", "derive_seed", "plan"]
