"""RunRecorder: what a recorded run holds, checked against hand computations.

Runs once per Keras backend on a tiny classifier (100 samples, batches of 8: 13
steps per epoch with a short last batch, so the sample weighting matters).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_lode.callbacks import RunRecorder, ValidationProbe
from keras_lode.runs import read_run

pytestmark = pytest.mark.backend

N, BS, P, EPOCHS = 100, 8, 3, 2
SPE = -(-N // BS)  # 13


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    xv = rng.normal(size=(64, 8)).astype("float32")
    yv = (xv[:, 0] + 0.5 * xv[:, 1] > 0).astype("int64")
    return x, y, xv, yv


def _model(lr=0.1, metrics=()):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss="sparse_categorical_crossentropy",
        metrics=list(metrics),
    )
    return model


class _BatchLosses(keras.callbacks.Callback):
    """Computes each batch's loss by hand, with the weights the step is about to use."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.losses = x, y, []

    def on_train_batch_begin(self, batch, logs=None):
        xb, yb = self.x[batch * BS : (batch + 1) * BS], self.y[batch * BS : (batch + 1) * BS]
        prob = keras.ops.convert_to_numpy(self.model(xb))
        nll = -np.log(prob[np.arange(len(yb)), yb])
        self.losses.append((float(np.mean(nll)), len(yb)))


def test_records_interval_means_and_fresh_metric(tmp_path):
    x, y, xv, yv = _data()
    model = _model()
    hand = _BatchLosses(x, y)
    path = tmp_path / "run.run.csv"
    rec = RunRecorder(
        path,
        points_per_epoch=P,
        validation_data=(xv, yv),
        validation_samples=50,
        meta={"task": "toy", "schedule": "constant", "seed": 0},
    )
    history = model.fit(
        x, y, batch_size=BS, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[hand, rec]
    )
    run = rec.run
    assert len(run) == EPOCHS * P
    bounds = [round((k + 1) * SPE / P) for k in range(P)]  # 4, 9, 13
    assert run.step.tolist() == [e * SPE + b for e in range(EPOCHS) for b in bounds]
    np.testing.assert_allclose(run.epoch, np.arange(1, EPOCHS * P + 1) / P)
    np.testing.assert_allclose(run.lr, 0.1, rtol=1e-6)
    # Interval means by hand, weighted by batch size like Keras (the last batch has 4).
    expected = []
    for e in range(EPOCHS):
        prev = 0
        for b in bounds:
            seg = hand.losses[e * SPE + prev : e * SPE + b]
            expected.append(sum(v * n for v, n in seg) / sum(n for _, n in seg))
            prev = b
    np.testing.assert_allclose(run.loss, expected, rtol=1e-5)
    # Not Keras's running epoch average: at the epoch end that is the mean of all 13.
    assert abs(run.loss[P - 1] - history.history["loss"][0]) > 1e-3
    # The validation metric is measured at each point: it moves within an epoch.
    assert len(set(np.round(run.metric[:P], 6))) > 1
    assert np.all((run.metric >= 0) & (run.metric <= 1))
    # Written atomically, readable, complete; the LR reaches History; the cost is known.
    again = read_run(path)
    assert again.status == "complete" and len(again) == EPOCHS * P
    np.testing.assert_allclose(again.loss, run.loss, rtol=1e-6)
    assert history.history["learning_rate"] == pytest.approx([0.1] * EPOCHS)
    assert run.meta["task"] == "toy" and run.meta["points_per_epoch"] == P
    assert run.meta["steps_per_epoch"] == SPE and run.meta["total_steps"] == SPE * EPOCHS
    assert 0 < run.meta["recorder_seconds"] and 0 < run.meta["recorder_fraction"] < 1


def test_validation_does_not_disturb_training_metrics():
    x, y, xv, yv = _data()
    plain = _model(metrics=["accuracy"]).fit(
        x, y, batch_size=BS, epochs=EPOCHS, shuffle=False, verbose=0
    )
    rec = RunRecorder(points_per_epoch=P, validation_data=(xv, yv))
    recorded = _model(metrics=["accuracy"]).fit(
        x, y, batch_size=BS, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[rec]
    )
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(recorded.history[key], plain.history[key], rtol=1e-5)


def test_lr_of_a_schedule_is_the_one_applied():
    x, y, xv, yv = _data()
    model = _model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.9)
    model.optimizer = None
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="sparse_categorical_crossentropy")
    rec = RunRecorder(points_per_epoch=P, validation_data=(xv, yv))
    model.fit(x, y, batch_size=BS, epochs=1, shuffle=False, verbose=0, callbacks=[rec])
    # LR of each interval's last step: 0.1 * 0.9 ** (step - 1).
    np.testing.assert_allclose(rec.run.lr, 0.1 * 0.9 ** (rec.run.step - 1), rtol=1e-5)


class _StopAfter(keras.callbacks.Callback):
    """Stops fit at the end of global step `stop_after` (1-based), like TerminateOnNaN."""

    def __init__(self, stop_after):
        super().__init__()
        self.stop_after, self.seen = stop_after, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.stop_after:
            self.model.stop_training = True


@pytest.mark.parametrize(
    "stop_after, steps, partial",
    [
        (SPE + 6, [4, 9, 13, SPE + 4, SPE + 6], True),  # between the 2nd epoch's 1st and 2nd
        (SPE + 9, [4, 9, 13, SPE + 4, SPE + 9], False),  # exactly on a log point
    ],
)
def test_early_stop_records_only_steps_that_ran(tmp_path, stop_after, steps, partial):
    # A fit stopped mid-epoch must not get points for steps that never ran: the points its
    # steps reached, then (if any steps follow the last one) one partial point, flagged.
    x, y, xv, yv = _data()
    hand = _BatchLosses(x, y)
    rec = RunRecorder(tmp_path, points_per_epoch=P, validation_data=(xv, yv))
    _model().fit(
        x,
        y,
        batch_size=BS,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[hand, rec, _StopAfter(stop_after)],
    )
    run = rec.run
    assert run.step.tolist() == steps
    assert "stopped_early" in run.flags
    assert ("partial_last_point" in run.flags) == partial
    # A partial point's epoch fraction is where it stopped; a log point's is nominal k/P.
    np.testing.assert_allclose(run.epoch[-1], steps[-1] / SPE if partial else 1 + 2 / P)
    # The last row's loss is the mean over the steps after the previous point (all batches
    # here are full: no sample weighting needed).
    last = hand.losses[steps[-2] : steps[-1]]
    np.testing.assert_allclose(run.loss[-1], np.mean([v for v, _ in last]), rtol=1e-5)
    again = read_run(next(tmp_path.glob("*.run.csv")))
    assert again.step.tolist() == steps and again.flags == run.flags
    if partial:  # the LODE trainer drops the partial row
        from keras_lode.train.windows import prepare_runs

        assert prepare_runs([again, again], window=2).y.shape == (2, len(steps) - 1, 3)


def test_diverged_run_is_kept_and_flagged(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=10.0, size=(N, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")  # blows up to inf/NaN
    rec = RunRecorder(
        tmp_path,
        points_per_epoch=P,
        validation_data=(x[:16], y[:16]),
        metric=lambda t, p: float(-np.mean((t - p) ** 2)),
        meta={"seed": 1},
    )
    model.fit(x, y, batch_size=BS, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[rec])
    run = rec.run
    assert len(run) == EPOCHS * P  # nothing dropped
    assert run.status == "diverged" and "nonfinite_loss" in run.flags
    assert not np.isfinite(run.loss[-1])
    files = list(tmp_path.glob("*.run.csv"))
    assert len(files) == 1 and read_run(files[0]).status == "diverged"


def test_bad_arguments_are_named():
    x, y, xv, yv = _data()
    with pytest.raises(ValueError, match="validation_data"):
        RunRecorder(validation_data=xv)
    with pytest.raises(ValueError, match="metric='f1'"):
        RunRecorder(validation_data=(xv, yv), metric="f1")
    with pytest.raises(ValueError, match="same, non-zero number"):
        ValidationProbe((xv, yv[:10]))
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="validation_batch_size"):
            RunRecorder(validation_data=(xv, yv), validation_batch_size=bad)
    with pytest.raises(ValueError, match="points_per_epoch=0"):
        RunRecorder(points_per_epoch=0)
    with pytest.raises(TypeError, match="meta"):
        RunRecorder(meta=["task"])
    rec = RunRecorder(points_per_epoch=20, validation_data=(xv, yv))
    with pytest.raises(ValueError, match="points_per_epoch=20 exceeds the steps per epoch"):
        _model().fit(x, y, batch_size=BS, epochs=1, verbose=0, callbacks=[rec])


def test_probe_metrics_by_hand():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])

    class Fixed:
        def predict_on_batch(self, xb):
            return probs[np.asarray(xb)[:, 0].astype(int)]

    x = np.arange(4).reshape(4, 1)
    assert ValidationProbe((x, y)).measure(Fixed()) == pytest.approx(0.5)
    onehot = np.eye(2)[y]
    assert ValidationProbe((x, onehot)).measure(Fixed()) == pytest.approx(0.5)
    probe = ValidationProbe((x, y), metric=lambda t, p: float(np.mean(p[:, 1])))
    assert probe.measure(Fixed()) == pytest.approx(np.mean(probs[:, 1]))


def test_probe_follows_a_custom_predict_step():
    # A model whose predict_step post-processes its outputs: the probe measures what
    # predict gives, not the raw forward pass.
    class Flipped(keras.Model):
        def predict_step(self, *args):
            out = super().predict_step(*args)
            if keras.backend.backend() == "jax":  # (outputs, non-trainable state)
                return -out[0], out[1]
            return -out

    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax")(inp)
    model = Flipped(inp, out)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = np.zeros(64, "int64")

    def mean_output(y_true, y_pred):
        return float(np.mean(y_pred))

    expected = mean_output(y, model.predict_on_batch(x))
    assert expected == pytest.approx(-1 / 3)  # softmax rows sum to 1, negated
    probe = ValidationProbe((x, y), samples=64, metric=mean_output)
    assert probe.measure(model) == pytest.approx(expected)


def test_probe_chunks_change_the_cost_not_the_value():
    # 37 samples in chunks of 8: 5 calls of the same shape, the last one padded by
    # wrapping around; the padding must not count. Same value as one 37-sample call.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(37, 4)).astype("float32")
    y = rng.integers(0, 3, size=37)
    w = rng.normal(size=(4, 3)).astype("float32")

    class Linear:
        shapes = []

        def predict_on_batch(self, xb):
            xb = np.asarray(keras.ops.convert_to_numpy(xb))
            self.shapes.append(xb.shape)
            return xb @ w

    exact = float(np.mean(np.argmax(x @ w, axis=-1) == y))
    model = Linear()
    chunked = ValidationProbe((x, y), samples=37, batch_size=8)
    assert chunked.measure(model) == pytest.approx(exact)
    assert model.shapes == [(8, 4)] * 5
    model.shapes = []
    assert ValidationProbe((x, y), samples=37, batch_size=64).measure(model) == exact
    assert model.shapes == [(37, 4)]
    # The default follows the backend: 128 on torch (its layout copies), else 1024.
    from keras_lode.callbacks import default_validation_batch_size

    assert default_validation_batch_size("torch") == 128
    assert default_validation_batch_size("jax") == default_validation_batch_size("tensorflow")
    assert default_validation_batch_size("jax") == 1024
    assert ValidationProbe((x, y)).chunk == min(37, default_validation_batch_size())


def test_last_point_of_epoch_with_fit_validation():
    # fit's own validation runs `evaluate` before on_epoch_end, which resets the loss
    # tracker; the epoch's last interval then comes from the epoch mean (exact here:
    # 96 samples, 12 equal batches).
    x, y, xv, yv = _data()
    x, y = x[:96], y[:96]
    model = _model()
    hand = _BatchLosses(x, y)
    rec = RunRecorder(points_per_epoch=P, validation_data=(xv, yv))
    model.fit(
        x,
        y,
        batch_size=BS,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        validation_data=(xv, yv),
        callbacks=[hand, rec],
    )
    spe = 12
    expected = []
    for e in range(EPOCHS):
        for k in range(P):
            seg = hand.losses[e * spe + k * 4 : e * spe + (k + 1) * 4]
            expected.append(np.mean([v for v, _ in seg]))
    np.testing.assert_allclose(rec.run.loss, expected, rtol=1e-5)


def test_recorder_keeps_async_dispatch():
    # Overriding on_train_batch_end would turn off asynchronous callback dispatch (JAX).
    from keras.callbacks import CallbackList

    _, _, xv, yv = _data()
    model = _model()
    plain = CallbackList([], model=model)
    recorded = CallbackList([RunRecorder(validation_data=(xv, yv))], model=model)
    assert recorded._async_train == plain._async_train
