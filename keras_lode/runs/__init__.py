"""The runs stage: what a sweep records and what a LODE learns from.

`run` (the `Run` and `write_run`; re-exported here), `run_file` (reading run files;
re-exported here), the importers `keras_logs` (CSVLogger, History) and `mlflow_runs`
(MLflow), and `synthetic` (simulated runs for tests and the fast design loop). The Keras
callbacks that record runs (`RunRecorder`, their `LogPointObserver`) are in
`keras_lode.callbacks`. Importing this package does not import Keras.
"""

from keras_lode.runs.run import (
    COLUMNS,
    FORMAT,
    FORMAT_VERSION,
    META_DEFAULTS,
    STATUSES,
    SUFFIX,
    Run,
    run_name,
    runs_mode,
    write_run,
)
from keras_lode.runs.run_file import load_runs, read_run

__all__ = [
    "COLUMNS",
    "FORMAT",
    "FORMAT_VERSION",
    "META_DEFAULTS",
    "STATUSES",
    "SUFFIX",
    "Run",
    "load_runs",
    "read_run",
    "run_name",
    "runs_mode",
    "write_run",
]
