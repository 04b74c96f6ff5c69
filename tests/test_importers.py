"""Importers: Keras CSVLogger files and History objects, and a real MLflow store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_lode.importers import from_csv_logger, from_history, from_mlflow
from keras_lode.runs import read_run, write_run

# ------------------------------------------------------------------ Keras logs


def test_csv_logger_file_with_lr_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n"
        "0,0.5,0.01,1.25,0.6,1.0\n"
        "1,0.7,0.005,0.75,0.75,0.8\n"
        "2,0.8,0.0025,nan,,0.7\n"  # diverged loss, metric missing that epoch
    )
    run = from_csv_logger(path, steps_per_epoch=100, meta={"seed": 3, "schedule": "step"})
    np.testing.assert_array_equal(run.step, [100, 200, 300])
    np.testing.assert_array_equal(run.epoch, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(run.lr, [0.01, 0.005, 0.0025])
    np.testing.assert_array_equal(run.loss[:2], [1.25, 0.75])
    assert math.isnan(run.loss[2]) and math.isnan(run.metric[2])
    np.testing.assert_array_equal(run.metric[:2], [0.6, 0.75])
    assert run.points_per_epoch == 1 and run.meta["seed"] == 3
    assert run.meta["peak_lr"] == 0.01 and run.meta["total_steps"] == 300
    assert run.status == "diverged"
    assert "epoch_level" in run.flags and "nonfinite_loss" in run.flags
    # survives the run file format
    back = read_run(write_run(run, tmp_path))
    np.testing.assert_array_equal(back.lr, run.lr)


def test_csv_logger_without_lr_falls_back_to_param_and_flags(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,val_accuracy\n0,1.0,0.5\n1,0.5,0.6\n")
    with pytest.raises(ValueError, match="no learning-rate column.*'loss', 'val_accuracy'"):
        from_csv_logger(path)
    run = from_csv_logger(path, learning_rate=3e-3)
    np.testing.assert_array_equal(run.lr, [3e-3, 3e-3])
    assert "lr_from_param" in run.flags and "steps_unknown" in run.flags
    assert run.meta["peak_lr"] == 3e-3
    np.testing.assert_array_equal(run.step, [1, 2])


def test_csv_logger_missing_metric_key_names_it_and_lists_columns(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,val_acc,lr\n0,1.0,0.5,0.1\n")
    with pytest.raises(
        ValueError, match=r"`val_accuracy`.*Available keys: \['loss', 'lr', 'val_acc'\]"
    ):
        from_csv_logger(path)
    run = from_csv_logger(path, metric_key="val_acc")  # finds the old-style `lr` column
    assert run.lr[0] == 0.1 and run.metric[0] == 0.5
    path.write_text("epoch,loss,val_accuracy\n0,1.0\n")
    with pytest.raises(ValueError, match="line 2 has a different number of fields"):
        from_csv_logger(path, learning_rate=0.1)


def test_history_from_a_real_fit_recovers_the_schedule_lr(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=2, decay_rate=0.5)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4)).astype("float32"), rng.integers(0, 3, 40)
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=3,
        batch_size=10,
        verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(csv_path))],
    )
    run = from_history(history)
    # 30 training examples / batch 10 = 3 steps per epoch, read from history.params
    np.testing.assert_array_equal(run.step, [3, 6, 9])
    np.testing.assert_allclose(run.loss, history.history["loss"], rtol=0)
    np.testing.assert_allclose(run.metric, history.history["val_accuracy"], rtol=0)
    # Keras does not log the LR: it is the mean of the schedule over each epoch's steps
    want = [np.mean([1e-2 * 0.5 ** (s / 2) for s in range(e * 3, e * 3 + 3)]) for e in range(3)]
    np.testing.assert_allclose(run.lr, want, rtol=1e-6)
    assert "lr_from_schedule" in run.flags and "epoch_level" in run.flags
    # the CSVLogger file of the same fit holds the same points
    from_csv = from_csv_logger(csv_path, steps_per_epoch=3, learning_rate=1e-2)
    np.testing.assert_allclose(from_csv.loss, run.loss, rtol=1e-7)
    np.testing.assert_allclose(from_csv.metric, run.metric, rtol=1e-7)


def test_history_dict_and_bad_input():
    run = from_history({"loss": [1.0, 0.5], "val_accuracy": [0.2, 0.4], "learning_rate": [1, 2]})
    np.testing.assert_array_equal(run.lr, [1.0, 2.0])
    with pytest.raises(ValueError, match="`val_auc`.*Available keys"):
        from_history({"loss": [1.0], "learning_rate": [1.0]}, metric_key="val_auc")
    with pytest.raises(TypeError, match="history.*list"):
        from_history([1, 2, 3])
    with pytest.raises(ValueError, match="different lengths"):
        from_history({"loss": [1.0, 2.0], "val_accuracy": [0.1], "lr": [1.0, 1.0]})


# ------------------------------------------------------------------ MLflow


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A real SQLite tracking store filled with MLflow's own client."""
    mlflow = pytest.importorskip("mlflow")
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("sweep")
    logged = {}

    def log(name, steps, metrics, params, status="FINISHED"):
        r = client.create_run(exp, run_name=name)
        rid = r.info.run_id
        batch = [
            Metric(key, float(v), 1_000 + i, int(s))
            for key, values in metrics.items()
            for i, (s, v) in enumerate(zip(steps, values, strict=True))
        ]
        client.log_batch(rid, metrics=batch, params=[Param(k, str(v)) for k, v in params.items()])
        client.set_terminated(rid, status=status)
        logged[name] = (rid, metrics)

    log(
        "full",
        [0, 1, 2, 3],
        {
            "loss": [2.5, 1.25, 0.875, 0.5],
            "val_accuracy": [0.25, 0.5, 0.625, 0.75],
            "learning_rate": [1e-3, 5e-4, 2.5e-4, 1.25e-4],
        },
        {"schedule": "step", "seed": 1, "steps_per_epoch": 50, "optimizer_name": "AdamW"},
    )
    log(
        "no_lr",
        [0, 1, 2],
        {"loss": [2.0, 1.5, 1.0], "val_accuracy": [0.3, 0.4, 0.5]},
        {"learning_rate": 0.003, "seed": 2},
    )
    log(
        "diverged",
        [0, 1],
        {"loss": [3.0, math.nan], "val_accuracy": [0.1, 0.1], "learning_rate": [1.0, 1.0]},
        {"seed": 3},
        status="FAILED",
    )
    exp2 = client.create_experiment("per_step")
    r = client.create_run(exp2, run_name="fine")
    steps = [10, 20, 30, 40, 50, 60, 70, 80]
    client.log_batch(
        r.info.run_id,
        metrics=[Metric("loss", 1.0 / s, 0, s) for s in steps]
        + [Metric("val_accuracy", 0.01 * s, 0, s) for s in steps[1::2]]
        + [Metric("lr", 1e-3, 0, 10), Metric("lr", 2e-4, 0, 50)],
        params=[Param("steps_per_epoch", "40")],
    )
    client.set_terminated(r.info.run_id)
    return uri, logged


def test_mlflow_round_trip_same_values(mlflow_store):
    uri, logged = mlflow_store
    runs = from_mlflow("sweep", tracking_uri=uri)
    assert [r.meta["mlflow"]["run_name"] for r in runs] == ["full", "no_lr", "diverged"]
    full = runs[0]
    rid, metrics = logged["full"]
    assert full.run_id == rid
    np.testing.assert_array_equal(full.loss, metrics["loss"])
    np.testing.assert_array_equal(full.metric, metrics["val_accuracy"])
    np.testing.assert_array_equal(full.lr, metrics["learning_rate"])
    np.testing.assert_array_equal(full.epoch, [1, 2, 3, 4])
    np.testing.assert_array_equal(full.step, [50, 100, 150, 200])
    assert full.status == "complete" and full.flags == ["epoch_level"]
    assert (full.meta["schedule"], full.meta["seed"], full.meta["optimizer"]) == (
        "step",
        1,
        "AdamW",
    )
    assert full.meta["peak_lr"] == 1e-3 and full.meta["steps_per_epoch"] == 50


def test_mlflow_missing_lr_history_falls_back_to_param_and_is_flagged(mlflow_store):
    uri, _ = mlflow_store
    no_lr = from_mlflow("sweep", tracking_uri=uri)[1]
    np.testing.assert_array_equal(no_lr.lr, [0.003] * 3)
    assert "lr_from_param" in no_lr.flags
    assert no_lr.meta["peak_lr"] == 0.003
    with pytest.raises(ValueError, match="no learning-rate parameter among \\['lrate'\\]"):
        from_mlflow("sweep", tracking_uri=uri, lr_param="lrate")


def test_mlflow_diverged_and_failed_runs_keep_their_status(mlflow_store):
    uri, _ = mlflow_store
    bad = from_mlflow("sweep", tracking_uri=uri)[2]
    assert bad.status == "failed" and "nonfinite_loss" in bad.flags
    assert math.isnan(bad.loss[1])


def test_mlflow_missing_metric_key_names_it_and_lists_available(mlflow_store):
    uri, _ = mlflow_store
    with pytest.raises(
        ValueError,
        match=r"no metric `val_acc`.*Available metric keys: \['learning_rate', 'loss', "
        r"'val_accuracy'\]",
    ):
        from_mlflow("sweep", tracking_uri=uri, metric_key="val_acc")
    with pytest.raises(ValueError, match="No MLflow experiment 'nope'.*'per_step', 'sweep'"):
        from_mlflow("nope", tracking_uri=uri)


def test_mlflow_global_steps_align_metric_and_fill_lr(mlflow_store):
    uri, _ = mlflow_store
    (run,) = from_mlflow("per_step", tracking_uri=uri, lr_key="lr", step_unit="step")
    np.testing.assert_array_equal(run.step, [10, 20, 30, 40, 50, 60, 70, 80])
    np.testing.assert_allclose(run.epoch, np.array(run.step) / 40)
    assert run.points_per_epoch == 4
    np.testing.assert_array_equal(run.metric[1::2], [0.2, 0.4, 0.6, 0.8])
    assert np.all(np.isnan(run.metric[0::2]))  # not measured there: NaN, not copied
    np.testing.assert_array_equal(run.lr, [1e-3] * 4 + [2e-4] * 4)
    assert "lr_filled" in run.flags


def test_mlflow_run_selection_and_test_metric(mlflow_store):
    uri, logged = mlflow_store
    rid = logged["no_lr"][0]
    (run,) = from_mlflow("sweep", tracking_uri=uri, run_ids=[rid], test_metric_key="val_accuracy")
    assert run.run_id == rid and run.meta["test_metric"] == 0.5  # the last logged value
    (run,) = from_mlflow("sweep", tracking_uri=uri, filter_string="params.seed = '1'")
    assert run.meta["mlflow"]["run_name"] == "full"
    with pytest.raises(ValueError, match="run_ids.*'nope'"):
        from_mlflow("sweep", tracking_uri=uri, run_ids=["nope"])
    with pytest.raises(ValueError, match="step_unit.*'batch'"):
        from_mlflow("sweep", tracking_uri=uri, step_unit="batch")
