"""The learning-rate schedules (laid out as Keras' `keras.optimizers.schedules`).

- `LODESchedule` (`lode_schedule`): serves a (re)plannable LR table; what `LODECallback`
  drives during `fit`.
- The parametric schedules (`parametric`): `Constant`, `StepDecay`, `WarmupCosine`,
  `OneCycle`, `LinearDecay`, `WSD`; the sweep's families (`families`): `make_schedule`,
  `Switched`, `PointPath`; what they share (`pieces`).

Every class is registered for `keras.saving`, uses only `keras.ops` and runs inside the
compiled train step of every backend.

Example:

```python
from keras_lode import schedules

lr = schedules.make_schedule("onecycle", peak_lr=3e-3, total_steps=4690)
optimizer = keras.optimizers.AdamW(learning_rate=lr)
```
"""

from keras_lode.constants import FAMILIES
from keras_lode.schedules.families import PointPath, Switched, make_schedule
from keras_lode.schedules.lode_schedule import LODESchedule
from keras_lode.schedules.parametric import (
    WSD,
    Constant,
    LinearDecay,
    OneCycle,
    StepDecay,
    WarmupCosine,
)

__all__ = [
    "FAMILIES",
    "WSD",
    "Constant",
    "LODESchedule",
    "LinearDecay",
    "OneCycle",
    "PointPath",
    "StepDecay",
    "Switched",
    "WarmupCosine",
    "make_schedule",
]
