"""The example tasks: Fashion-MNIST CNN and ResNet, CIFAR ResNet, byte-level GPT, and the
zoo: character-level GRU (`charlm`), digits and Fashion-MNIST MLPs with SGD.

Each task is a `keras_lode.tasks.Task`: a model
builder, a data loader and the training settings (epochs, batch size, log points per
epoch P, optimizer) at one of several scales — `"quick"` (seconds, for tests), `"cpu"`
(minutes on 2 CPU cores; the sweep and the benchmark at CPU scale) and `"full"` (the
paper's scale, for a GPU). `get_task` looks one up by name; `keras_lode.sweep.sweep` and
`keras_lode.experiments.train_one` take it as it is.

Example:

```python
from keras_lode.tasks import get_task

task = get_task("fmnist_cnn", scale="quick")
data = task.load_data(seed=0)
model = task.build_model(seed=0)
```
"""

from keras_lode.tasks.loading import load_task
from keras_lode.tasks.registry import SCALES, get_task, task_names
from keras_lode.tasks.task import Task, TaskData, split_data

__all__ = ["SCALES", "Task", "TaskData", "get_task", "load_task", "split_data", "task_names"]
