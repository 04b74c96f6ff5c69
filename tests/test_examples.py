"""The examples in --quick mode, the task data loaders and the comparison statistics."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _example(name):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_example(name, tmp_path, *args):
    out = tmp_path / f"{name}.json"
    assert _example(name).main(["--quick", "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


def _expected_lrs(result, family, peak_lr):
    from keras import ops

    from keras_lode.schedules import make_schedule

    total = result["steps_per_epoch"] * len(result["epochs"])
    sched = make_schedule(family, peak_lr, total)
    return [float(ops.convert_to_numpy(sched(s - 1))) for s in result["points"]["step"]]


@pytest.mark.backend
def test_cnn_example_quick_learns_and_follows_schedule(tmp_path):
    r = _run_example("fashion_mnist_cnn", tmp_path, "--schedule", "cosine", "--peak-lr", "3e-3")
    assert len(r["epochs"]) == 1
    # 4 log points per epoch at the quick scale, ending on the last step of the epoch.
    assert len(r["points"]["step"]) == 4
    assert r["points"]["step"][-1] == r["steps_per_epoch"]
    np.testing.assert_allclose(r["points"]["lr"], _expected_lrs(r, "cosine", 3e-3), rtol=1e-5)
    # 512 images, one epoch: far above the 10% of chance (measured ~30-35%).
    assert r["test_at_end"] > 0.2
    assert all(math.isfinite(v) for v in r["points"]["loss"])


def test_resnet_example_quick(tmp_path):
    r = _run_example("fashion_mnist_resnet", tmp_path, "--schedule", "step", "--peak-lr", "1e-3")
    assert len(r["epochs"]) == 1 and r["task"] == "fmnist_resnet"
    np.testing.assert_allclose(r["points"]["lr"], _expected_lrs(r, "step", 1e-3), rtol=1e-5)
    assert 0.0 <= r["test_at_end"] <= 1.0
    assert math.isfinite(r["epochs"][0]["train_loss"])


def test_gpt_example_quick_next_token_accuracy(tmp_path):
    r = _run_example("text_gpt", tmp_path, "--schedule", "onecycle", "--peak-lr", "3e-3")
    assert r["task"] == "text_gpt"
    np.testing.assert_allclose(r["points"]["lr"], _expected_lrs(r, "onecycle", 3e-3), rtol=1e-5)
    # Uniform guessing over 256 bytes gives 0.4%; one short epoch already learns byte
    # frequencies (measured ~10-14%).
    assert r["test_at_end"] > 0.05
    assert r["epochs"][0]["train_loss"] < math.log(256)


def test_examples_reject_unknown_schedule(tmp_path):
    with pytest.raises(SystemExit):
        _example("fashion_mnist_cnn").main(["--quick", "--schedule", "cyclic"])


def test_fashion_mnist_loader_reads_idx():
    from keras_lode.tasks import datasets

    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed")
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_loaders_reject_bad_arguments(tmp_path):
    from keras_lode.tasks import datasets, get_task

    with pytest.raises(FileNotFoundError, match="path"):
        datasets.load_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match="classes"):
        datasets.load_cifar(7)
    with pytest.raises(ValueError, match="source"):
        datasets.load_text("shakespeare")
    with pytest.raises(ValueError, match="Unknown task"):
        get_task("mnist_mlp")
    with pytest.raises(ValueError, match="scale"):
        get_task("fmnist_cnn", scale="huge")


def test_text_loader_and_split_do_not_overlap():
    from keras_lode.tasks.datasets import load_text
    from keras_lode.tasks.gpt import text_data

    text = load_text("pydoc")
    assert len(text) > 400_000 and b"statement" in text
    d = text_data(source="pydoc", seq_len=16, n_train=100, n_val=10, n_test=10)
    # y is x shifted by one byte; the test block is the tail of the corpus.
    np.testing.assert_array_equal(d.x_train[0, 1:], d.y_train[0, :-1])
    tokens = np.frombuffer(text, dtype=np.uint8)
    n_seq = (len(tokens) - 1) // 16
    np.testing.assert_array_equal(d.x_test[-1], tokens[(n_seq - 1) * 16 : n_seq * 16])


def test_paired_difference_matches_hand_computation():
    from keras_lode.experiments.stats import paired_difference

    p = paired_difference([0.90, 0.91, 0.92], [0.89, 0.89, 0.91])
    d = np.array([0.01, 0.02, 0.01])
    half = 4.303 * d.std(ddof=1) / math.sqrt(3)
    assert p["mean"] == pytest.approx(d.mean())
    assert p["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    # 80% power at 5%: (t_0.975 + t_0.80) sd / sqrt(n), df = 2.
    assert p["mde80"] == pytest.approx((4.303 + 1.061) * d.std(ddof=1) / math.sqrt(3))
    from keras_lode.experiments.stats import minimum_detectable_effect

    # Large n: the normal approximation, 2.80 sd / sqrt(n).
    assert minimum_detectable_effect(1.0, 400) == pytest.approx(2.802 / 20, rel=1e-3)
    with pytest.raises(ValueError, match="equal"):
        paired_difference([1, 2], [1])


def test_summarize_picks_best_other_method_as_baseline():
    from keras_lode.experiments.stats import format_table, summarize

    res = []
    for seed, (a, b, c) in enumerate([(0.9, 0.8, 0.85), (0.92, 0.81, 0.86)]):
        for m, v in (("lode", a), ("cosine", b), ("onecycle", c)):
            res.append(
                {"method": m, "seed": seed, "test_at_best_val": v, "test_at_end": v, "wall_s": 1.0}
            )
    s = summarize(res, "lode")
    assert [r["method"] for r in s["rows"]] == ["lode", "onecycle", "cosine"]
    assert s["paired"]["baseline"] == "onecycle"
    assert s["paired"]["mean"] == pytest.approx(0.055)
    assert "paired lode - onecycle" in format_table(res, "lode")


def test_compare_method_parsing_errors():
    from keras_lode.commands.arguments import parse_seeds
    from keras_lode.experiments.methods import parse_methods

    with pytest.raises(ValueError, match="--methods"):
        parse_methods("cosine@fast", None, None)
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("sgdr@1e-3", None, None)
    with pytest.raises(ValueError, match="--runs"):
        parse_methods("replay", None, None)
    with pytest.raises(ValueError, match="peak_lr"):
        parse_methods("cosine", None, None)
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("1,1")
    assert [m.label for m in parse_methods("cosine@3e-3,step@1e-2", None, None)] == [
        "cosine@3e-03",
        "step@1e-02",
    ]


def _const_run(lr, loss, metric, steps, total):
    from keras_lode import Run

    k = len(steps)
    return Run(
        step=steps,
        epoch=[s / total for s in steps],
        lr=[lr] * k,
        loss=[loss] * k,
        metric=[metric] * k,
        meta={
            "task": "fmnist_cnn",
            "schedule": "constant",
            "peak_lr": lr,
            "seed": 0,
            "total_steps": total,
            "points_per_epoch": k,
            "status": "complete",
        },
    )


def test_replay_and_retrieval_set_the_optimizer_lr():
    from keras_lode.experiments.methods import Method
    from keras_lode.experiments.running import train_one
    from keras_lode.tasks import get_task

    spec = get_task("fmnist_cnn", scale="quick")
    data = spec.load_data()
    total = spec.steps_per_epoch(len(data.x_train))  # 8 steps, 4 log points
    steps = [2, 4, 6, 8]
    # Run B (followed first) has LR 1e-2 but an absurd loss; run A has LR 1e-4 and a loss
    # and accuracy like a real run's. After a 2-point window the current run (loss ~2,
    # accuracy ~0.2, LR 1e-2) is nearest to A in standardized units, so retrieval
    # switches to A's LR.
    run_b = _const_run(1e-2, 100.0, 0.0, steps, total)
    run_a = _const_run(1e-4, 2.2, 0.25, steps, total)
    r = train_one(spec, Method("retrieval", runs=[run_b, run_a], options={"window": 2}), data=data)
    np.testing.assert_allclose(r["points"]["lr"], [1e-2, 1e-2, 1e-4, 1e-4], rtol=1e-6)
    assert all(0.0 <= m <= 1.0 for m in r["points"]["metric"])  # measured at every point
    r = train_one(spec, Method("replay", runs=[run_a]), data=data)
    np.testing.assert_allclose(r["points"]["lr"], [1e-4] * 4, rtol=1e-6)


def test_cnn_example_quick_with_shipped_lode(tmp_path):
    # One quick epoch has 4 log points, fewer than the model's window: the callback warns
    # that it will never replan and the run follows its warm-up (constant at --peak-lr).
    with pytest.warns(UserWarning, match="never replan"):
        r = _run_example(
            "fashion_mnist_cnn", tmp_path, "--schedule", "lode", "--peak-lr", "2e-3",
            "--warmup", "constant",
        )  # fmt: skip
    assert r["kind"] == "lode"
    np.testing.assert_allclose(r["points"]["lr"], [2e-3] * 4, rtol=1e-6)
    assert r["test_at_end"] > 0.2


@pytest.mark.backend
def test_compare_observer_keeps_async_dispatch_and_the_next_step_uses_the_set_lr():
    # The observer finds log points at batch begin / epoch end (LogPointObserver), so it does
    # not override on_train_batch_end (that would turn off Keras's asynchronous callback
    # dispatch on JAX), and the LR it sets for replay at a point is applied from the very
    # next step on: checked from the weights, which move by exactly the LR per step here.
    import types

    import keras
    from keras.callbacks import CallbackList

    from keras_lode import RunRecorder
    from keras_lode.experiments.methods import TableController
    from keras_lode.experiments.running import observer_class

    Observer = observer_class()
    assert Observer.on_train_batch_end is keras.callbacks.Callback.on_train_batch_end

    n, bs = 64, 8  # 8 steps per epoch, 2 epochs, P = 2: points at steps 4, 8, 12, 16
    x = np.ones((n, 3), "float32")
    y = np.zeros((n, 1), "float32")
    data = types.SimpleNamespace(x_val=x[:16], y_val=y[:16, 0], x_test=x[:16], y_test=y[:16, 0])
    spec = types.SimpleNamespace(
        points_per_epoch=2, epochs=2, metric="accuracy", accuracy_metric=True
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])

    def mean_output(y_true, y_pred):  # d loss / d kernel = mean(x) = 1 for every weight
        return keras.ops.mean(y_pred, axis=-1)

    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=mean_output)
    w0 = np.array(model.get_weights()[0])
    controller = TableController([0.0, 0.25, 0.5, 0.75], [0.1, 0.05, 0.02, 0.01])
    observer = Observer(spec, data, n // bs, controller=controller, val_points=(x[:16], y[:16, 0]))
    plain = CallbackList([], model=model)
    assert CallbackList([observer], model=model)._async_train == plain._async_train

    recorder = RunRecorder(points_per_epoch=2)  # before the observer: sees each interval's LR
    model.fit(
        x, y, batch_size=bs, epochs=2, shuffle=False, verbose=0, callbacks=[recorder, observer]
    )
    p = observer.points
    assert p["step"] == [4, 8, 12, 16]
    # lr_at(0) for the first interval, then the table at the fraction each point ends.
    lrs = [0.1, 0.05, 0.02, 0.01]
    np.testing.assert_allclose(p["lr"], lrs, rtol=1e-6)
    np.testing.assert_allclose(recorder.run.lr, lrs, rtol=1e-6)
    np.testing.assert_allclose(p["loss"], recorder.run.loss, rtol=1e-6)
    assert p["metric"] == [1.0] * 4, p["metric"]  # argmax of one unit == label 0
    # Each LR ran exactly 4 steps: one step late would move the weights by 0.09 less.
    np.testing.assert_allclose(w0 - model.get_weights()[0], 4 * sum(lrs), rtol=1e-5)
    assert [e["epoch"] for e in observer.per_epoch] == [1, 2]
