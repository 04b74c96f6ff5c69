"""`keras_lode.sweep`: the sweep side of `keras_lode.experiments`, under its public name.

`Task`, `sweep(task, out_dir, engine="local"|"ray")` and their helpers live in
`keras_lode.experiments` (`task`, `grid`, `trial`, `engines`); this module re-exports them.

Example:

```python
from keras_lode.sweep import Task, sweep

results = sweep("my_tasks.py:TASK", "runs/", peak_lrs=[1e-3, 3e-3], seeds=[0, 1])
```
"""

from keras_lode.experiments.engines import DONE_STATUSES, ENGINES, sweep, sweep_status
from keras_lode.experiments.grid import Trial, TrialResult, make_grid
from keras_lode.experiments.trial import run_trial
from keras_lode.tasks.loading import load_task
from keras_lode.tasks.task import Task, TaskData, split_data

__all__ = [
    "DONE_STATUSES",
    "ENGINES",
    "Task",
    "TaskData",
    "Trial",
    "TrialResult",
    "load_task",
    "make_grid",
    "run_trial",
    "split_data",
    "sweep",
    "sweep_status",
]
