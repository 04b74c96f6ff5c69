"""Where does a fit's wall time go between callback hooks? (diagnostic for the TF overhead)

Fits the Fashion-MNIST CNN several times in one process (12k images, 2 epochs, batch 128)
with a given set of callbacks (`--arms lode,recorder,none`, cycled) and hook timers before
and after them, and prints every gap between consecutive hook events longer than
`--threshold` seconds other than ordinary runs of training steps. This is how the README's
"pause between on_epoch_begin and the first batch of the next epoch" on TensorFlow was
located. It asserts nothing.

    KERAS_BACKEND=tensorflow python benchmarks/epoch_pause.py --arms lode --fits 4
    KERAS_BACKEND=tensorflow python benchmarks/epoch_pause.py --arms recorder,none --fits 8
"""

from __future__ import annotations

import argparse
import gc
import time

from _backends import compile_adamw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", default="lode", help="comma list of lode, recorder, none; cycled")
    ap.add_argument("--fits", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=0.25)
    args = ap.parse_args(argv)

    import keras

    from keras_lode.callback import LODECallback
    from keras_lode.lode_schedule import LODESchedule
    from keras_lode.ode import random_model
    from keras_lode.recorder import RunRecorder
    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    x = (x[:14000].astype("float32") / 255.0)[..., None]
    y = y[:14000].astype("int64")
    xt, yt, xv, yv = x[:12000], y[:12000], x[12000:], y[12000:]
    lode = random_model(seed=0, points_per_epoch=2, horizon=4, lr_range=(1e-4, 1e-2))
    events: list[tuple[str, float]] = []

    class Mark(keras.callbacks.Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def _mark(self, what):
            events.append((f"{self.tag}{what}", time.perf_counter()))

        def on_epoch_end(self, epoch, logs=None):
            self._mark(f"epoch_end{epoch}")

        def on_epoch_begin(self, epoch, logs=None):  # noqa: F811 (keeps the epoch index)
            self.epoch = epoch
            self._mark(f"epoch_begin{epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self._mark(f"first_batch_of_epoch{self.epoch}")

        def on_train_end(self, logs=None):
            self._mark("train_end")

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for i in range(args.fits):
        arm = arms[i % len(arms)]
        gc.collect()
        events.clear()
        keras.utils.set_random_seed(0)
        model = build_cnn(seed=0)
        if arm == "lode":
            middle = [
                LODECallback(
                    lode, validation_data=(xv, yv), points_per_epoch=2, window=2,
                    replan_every=1, seed=0, verbose=0,
                )
            ]  # fmt: skip
        elif arm == "recorder":
            middle = [RunRecorder(points_per_epoch=2, validation_data=(xv, yv))]
        elif arm == "none":
            middle = []
        else:
            ap.error(f"unknown arm {arm!r}; expected lode, recorder or none")
        compile_adamw(model, LODESchedule(initial_learning_rate=2e-3))
        t0 = time.perf_counter()
        model.fit(
            xt, yt, batch_size=128, epochs=2, verbose=0,
            callbacks=[Mark("before:"), *middle, Mark("after:")],
        )  # fmt: skip
        wall = time.perf_counter() - t0
        gaps, prev = [], t0
        for tag, t in events:
            # A gap ending at epoch_end is the epoch's training steps: not a pause.
            if t - prev > args.threshold and "epoch_end" not in tag:
                gaps.append(f"{t - prev:.2f}s before {tag}")
            prev = t
        epochs = [t for tag, t in events if tag.startswith("after:epoch_end")]
        per_epoch = [f"{b - a:.2f}s" for a, b in zip([t0, *epochs[:-1]], epochs, strict=True)]
        print(
            f"fit {i} [{arm}]: {wall:.2f}s (epochs: {', '.join(per_epoch)}); "
            f"gaps: {gaps or 'none'}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
