"""`keras_lode.train.fit`: train either kind of LODE on recorded runs."""

from __future__ import annotations

from keras_lode.model.schema import KINDS

__all__ = ["fit"]


def fit(runs, config=None, *, kind: str = "generative", **options):
    """Trains a LODE of `kind` on recorded runs.

    Example:

    ```python
    import keras_lode
    from keras_lode import train

    runs = keras_lode.load_runs("runs/fmnist")
    model, report = train.fit(runs, window=10)                  # the paper's LODE
    ens = train.fit(runs, kind="controlled", members=5)         # the controlled ensemble
    ens.export("fmnist_controlled.npz")
    ```

    Args:
        runs: `keras_lode.Run`s sharing P and K.
        config: the trainer's options object, or None: a
            `keras_lode.train.trainer.FitConfig` for `"generative"`, a
            `keras_lode.train.ensemble.ControlledFitConfig` for `"controlled"`.
        kind: `"generative"` (the paper's model, where the LR is a decoded channel;
            `keras_lode.train.trainer.fit`) or `"controlled"` (the LR path is an input; an
            ensemble with calibrated spread; `keras_lode.train.ensemble.fit_controlled`).
        **options: the options of that trainer (they override `config`'s).

    Returns:
        generative: `(TorchLatentODE, FitReport)`; controlled: a `ControlledFit`.

    Raises:
        ValueError: unknown `kind`, or what the trainer raises.
        TypeError: an option that trainer does not have.
    """
    if kind not in KINDS:
        raise ValueError(f"Argument `kind` must be one of {KINDS}. Received: kind={kind!r}")
    if kind == "controlled":
        from keras_lode.train.ensemble import fit_controlled

        return fit_controlled(runs, config, **options)
    from keras_lode.train.trainer import fit as fit_generative

    return fit_generative(runs, config, **options)
