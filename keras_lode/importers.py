"""Importers: turn the runs you already have into `keras_lode.Run`s.

- `from_csv_logger(path)`: a file written by `keras.callbacks.CSVLogger`;
- `from_history(history)`: the `History` object returned by `model.fit` (or its dict);
- `from_mlflow(experiment, tracking_uri=...)`: every run of an MLflow experiment.

They live in `keras_lode.runs.keras_logs` and `keras_lode.runs.mlflow_runs`.
"""

from keras_lode.runs.keras_logs import from_csv_logger, from_history
from keras_lode.runs.mlflow_runs import from_mlflow

__all__ = ["from_csv_logger", "from_history", "from_mlflow"]
