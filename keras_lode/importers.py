"""Public alias of `keras_lode.runs.importers`: `from_csv_logger`, `from_history`,
`from_mlflow` turn runs you already have into `keras_lode.Run`s."""

from keras_lode.runs.importers import from_csv_logger, from_history, from_mlflow

__all__ = ["from_csv_logger", "from_history", "from_mlflow"]
