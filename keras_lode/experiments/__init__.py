"""Experiments: sweeps (the LODE's training data) and comparisons of LR schedules.

One concept per module:

- `Task`, `TaskData`, `split_data`, `load_task` are `keras_lode.tasks`' (re-exported);
- `grid`: `Trial`, `Switch`, `Branch`, `TrialResult`, `make_grid`, `make_switched_trials`,
  `make_branch_trials`;
- `trial`: `run_trial` (one trial, divergence watch, failed runs) and the
  `python -m keras_lode.experiments.trial` entry point of isolated trials;
- `engines`: `sweep` (options `SweepConfig`) on the local engine (in process or
  subprocesses) or Ray Tune;
- `methods`: `Method` (a family, `lode`, `replay`, `retrieval`), its controllers and the
  LODE callback, `parse_methods`, `best_first`, `default_model`;
- `running`: `train_one`, `run_comparison`, `load_task_data`, `predict_accuracy`,
  `write_json`;
- `stats`: `paired_difference`, `summarize`, `format_table`;
- `plots`: `plot_comparison`.

The names below are resolved lazily: importing this package imports none of its modules
(and no Keras). `keras_lode.sweep` re-exports the sweep side under its historical name.

Example:

```python
from keras_lode.experiments import Method, sweep, train_one
from keras_lode.tasks import get_task

results = sweep("my_tasks.py:TASK", "runs/", peak_lrs=[1e-3, 3e-3], seeds=[0, 1])
r = train_one(get_task("fmnist_cnn", scale="quick"), Method("cosine", peak_lr=3e-3))
```
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Task": "keras_lode.tasks.task",
    "TaskData": "keras_lode.tasks.task",
    "load_task": "keras_lode.tasks.loading",
    "split_data": "keras_lode.tasks.task",
    "Trial": "grid",
    "TrialResult": "grid",
    "make_grid": "grid",
    "make_switched_trials": "grid",
    "make_branch_trials": "grid",
    "Branch": "grid",
    "Switch": "grid",
    "run_trial": "trial",
    "ENGINES": "engines",
    "DONE_STATUSES": "engines",
    "SweepConfig": "engines",
    "sweep": "engines",
    "sweep_status": "engines",
    "METHOD_KINDS": "methods",
    "Method": "methods",
    "parse_methods": "methods",
    "best_first": "methods",
    "default_model": "methods",
    "train_one": "running",
    "run_comparison": "running",
    "predict_accuracy": "running",
    "load_task_data": "running",
    "write_json": "running",
    "paired_difference": "stats",
    "summarize": "stats",
    "format_table": "stats",
    "plot_comparison": "plots",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_lode.experiments' has no attribute {name!r}")
    if "." not in module:
        module = f"keras_lode.experiments.{module}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
