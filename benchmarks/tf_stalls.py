"""TensorFlow's intermittent ~2.5-s stalls on this machine, without any keras_lode code.

Fits the Fashion-MNIST CNN (12k images, 2 epochs, AdamW with a float LR, no callback but a
timer) `--fits` times in one TensorFlow process and prints each fit's wall time, its epochs'
times and the process's major page faults. A fit counts as stalled if it is over 1.3 x the
fastest. With `--sampler`, a Python thread samples the main thread's stack every 50 ms (as a
sampling profiler would) during the fits.

    python benchmarks/tf_stalls.py --fits 8
    python benchmarks/tf_stalls.py --fits 8 --sampler
    python benchmarks/tf_stalls.py --fits 8 --plain-dataset

It asserts nothing; results go to `benchmarks/results/tf_stalls[_sampler][_plain_dataset].json`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"

from _backends import report_header, write_report  # noqa: E402


def _major_faults() -> int:
    return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[9])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fits", type=int, default=8)
    ap.add_argument("--sampler", action="store_true")
    ap.add_argument(
        "--plain-dataset",
        action="store_true",
        help="feed a tf.data.Dataset of batches, no shuffle and no prefetch",
    )
    ap.add_argument("--output", default=None)
    args = ap.parse_args(argv)

    import keras

    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    x = (x[:12000].astype("float32") / 255.0)[..., None]
    y = y[:12000].astype("int64")

    if args.plain_dataset:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(128)

    if args.sampler:
        main_id = threading.main_thread().ident

        def sample():
            while True:
                frame = sys._current_frames().get(main_id)
                if frame is not None:
                    traceback.extract_stack(frame)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    fits = []
    for i in range(args.fits):
        gc.collect()
        keras.utils.set_random_seed(0)
        model = build_cnn(seed=0)
        model.compile(
            optimizer=keras.optimizers.AdamW(2e-3, weight_decay=1e-2),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        timer = EpochTimes()
        faults = _major_faults()
        t0 = time.perf_counter()
        if args.plain_dataset:
            model.fit(data, epochs=2, verbose=0, callbacks=[timer])
        else:
            model.fit(x, y, batch_size=128, epochs=2, verbose=0, callbacks=[timer])
        wall = time.perf_counter() - t0
        fits.append(
            {"wall_s": wall, "epoch_s": timer.times, "major_faults": _major_faults() - faults}
        )
        print(
            f"fit {i}: {wall:.2f} s, epochs "
            + ", ".join(f"{t:.2f}" for t in timer.times)
            + f" s, {fits[-1]['major_faults']} major faults",
            flush=True,
        )
    fastest = min(f["wall_s"] for f in fits)
    stalled = sum(f["wall_s"] > 1.3 * fastest for f in fits)
    print(f"{stalled} of {len(fits)} fits stalled (> 1.3 x the fastest, {fastest:.2f} s)")
    name = (
        "tf_stalls"
        + ("_sampler" if args.sampler else "")
        + ("_plain_dataset" if args.plain_dataset else "")
    )
    out = args.output or Path(__file__).resolve().parent / "results" / f"{name}.json"
    write_report(
        report_header(
            __file__,
            argv,
            sampler=args.sampler,
            plain_dataset=args.plain_dataset,
            fits=fits,
            stalled=stalled,
        ),
        out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
