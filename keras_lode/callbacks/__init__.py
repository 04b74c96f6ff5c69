"""The Keras callbacks (laid out as Keras' `keras.callbacks`, one callback per file).

- `LODECallback` (`lode_callback`): replans the LR during `fit`; its pieces are the
  options (`lode_options`), the LR tables (`lr_tables`), one replan (`replanning`) and the
  resumable state (`callback_state`).
- `RunRecorder` (`recorder`): records a run of a sweep.
- `LogPointObserver` (`observer`): their shared base, which finds and measures the log
  points without stalling the step pipeline; `ValidationProbe` (`validation`).
"""

from keras_lode.callbacks.lode_callback import LODECallback
from keras_lode.callbacks.observer import LogPointObserver, current_learning_rate
from keras_lode.callbacks.recorder import RunRecorder
from keras_lode.callbacks.validation import ValidationProbe, default_validation_batch_size

__all__ = [
    "LODECallback",
    "LogPointObserver",
    "RunRecorder",
    "ValidationProbe",
    "current_learning_rate",
    "default_validation_batch_size",
]
