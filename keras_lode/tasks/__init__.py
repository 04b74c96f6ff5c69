"""The example tasks: Fashion-MNIST CNN and ResNet, CIFAR ResNet, byte-level GPT.

Each task is a `TaskSpec`: a model builder, a data loader and the training settings
(epochs, batch size, log points per epoch P, optimizer) at one of several scales —
`"quick"` (seconds, for tests), `"cpu"` (minutes on 2 CPU cores; the sweep and the
benchmark at CPU scale) and `"full"` (the paper's scale, for a GPU). `get_task` looks one
up by name; `TaskSpec.as_sweep_task()` hands it to `keras_lode.sweep`.

Example:

```python
from keras_lode.tasks import get_task

spec = get_task("fmnist_cnn", scale="quick")
data = spec.load_data(seed=0)
model = spec.build_model(seed=0)
```
"""

from keras_lode.tasks._spec import SCALES, TaskData, TaskSpec, get_task, task_names

__all__ = ["SCALES", "TaskData", "TaskSpec", "get_task", "task_names"]
