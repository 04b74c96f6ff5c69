"""TensorFlow's intermittent ~2.5-s stalls on this machine, without any keras_lode code.

Fits the Fashion-MNIST CNN (12k images, 2 epochs, AdamW with a float LR, no callback but a
timer) `--fits` times in one TensorFlow process and prints each fit's wall time, its epochs'
times, the process's major page faults, its CPU time and the machine's idle and steal time
(from /proc/stat). A fit counts as stalled if it is over 1.3 x the fastest.

A stalled fit uses no more CPU than the others while the machine sits idle: the process
waits. `--gdb-snapshots DIR` shows on what: when no batch has begun 1 s after an epoch's
end, gdb writes every thread's native stack to DIR (gdb's attach lengthens that stall). The
main thread waits in `tensorflow::data::RootDataset::Iterator::~Iterator` for tf.data's
autotuning model thread, which sleeps in `Model::OptimizeLoop`. `--no-autotune` turns
autotuning off in the input pipeline, and with it that thread. `--sampler` runs a Python
thread that samples the main thread's stack every 50 ms, as a sampling profiler would (it
made the stalls rare).

    python benchmarks/tf_stalls.py --fits 8
    python benchmarks/tf_stalls.py --fits 8 --no-autotune
    python benchmarks/tf_stalls.py --fits 6 --gdb-snapshots /tmp/tf_stall_stacks
    python benchmarks/tf_stalls.py --fits 8 --plain-dataset
    python benchmarks/tf_stalls.py --fits 8 --sampler

It asserts nothing. Results go to
`benchmarks/results/tf_stalls[_sampler][_plain_dataset][_no_autotune].json`.
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

from _backends import (  # noqa: E402
    compile_adamw,
    no_tf_autotune,
    patch_array_adapter_no_autotune,
    report_header,
    write_report,
)


def _major_faults() -> int:
    return int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[9])


_TICK = os.sysconf("SC_CLK_TCK")


def _clocks() -> dict:
    """Wall, this process's CPU time, and the machine's idle, iowait and steal time (s)."""
    t = os.times()
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    idle, iowait, steal = (int(fields[i]) / _TICK for i in (3, 4, 7))
    return {
        "wall": time.perf_counter(),
        "cpu": t.user + t.system,
        "idle": idle,
        "iowait": iowait,
        "steal": steal,
    }


def _delta(a: dict, b: dict) -> dict:
    return {f"{k}_s": round(b[k] - a[k], 3) for k in a}


def _gdb_snapshot(folder: Path, fit: int, epoch: int) -> dict:
    """Every thread's native stack of this process, by gdb; a summary of the tf.data frames."""
    import re
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fit{fit}_epoch{epoch}.txt"
    text = subprocess.run(
        ["gdb", "-p", str(os.getpid()), "-batch", "-ex", "thread apply all bt 30"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    path.write_text(text)
    threads = re.split(r"\n(?=Thread \d+ )", text)
    main = next((t for t in threads if f"(LWP {os.getpid()})" in t.split("\n", 1)[0]), "")

    def data_frames(thread: str) -> list[str]:
        names = re.findall(r" in (tensorflow::data::[\w:~<>]+)", thread)
        return list(dict.fromkeys(names))

    return {
        "file": str(path),
        "main_thread_tf_data_frames": data_frames(main),
        "threads_in_optimize_loop": sum("Model::OptimizeLoop" in t for t in threads),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fits", type=int, default=8)
    ap.add_argument("--sampler", action="store_true")
    ap.add_argument(
        "--plain-dataset",
        action="store_true",
        help="feed a tf.data.Dataset of batches, no shuffle and no prefetch",
    )
    ap.add_argument(
        "--no-autotune",
        action="store_true",
        help="turn tf.data's autotuning (and its model thread) off in the input pipeline",
    )
    ap.add_argument(
        "--gdb-snapshots",
        metavar="DIR",
        default=None,
        help="when no batch has started 1 s after an epoch's end (a stall, at the next "
        "epoch's start or at the end of fit), write every thread's native stack (gdb) to "
        "DIR and record which tf.data frames the main thread waits in",
    )
    ap.add_argument("--output", default=None)
    args = ap.parse_args(argv)
    if args.gdb_snapshots:
        import shutil

        if shutil.which("gdb") is None:
            ap.error("--gdb-snapshots needs gdb on PATH (apt-get install gdb)")

    import keras

    from keras_lode.tasks.cnn import build_cnn
    from keras_lode.tasks.data import load_fashion_mnist

    (x, y), _ = load_fashion_mnist()
    x = (x[:12000].astype("float32") / 255.0)[..., None]
    y = y[:12000].astype("int64")

    if args.plain_dataset:
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(128)
        if args.no_autotune:
            data = data.with_options(no_tf_autotune())
    elif args.no_autotune:
        patch_array_adapter_no_autotune()

    if args.sampler:
        main_id = threading.main_thread().ident

        def sample():
            while True:
                frame = sys._current_frames().get(main_id)
                if frame is not None:
                    traceback.extract_stack(frame)
                time.sleep(0.05)

        threading.Thread(target=sample, daemon=True).start()

    snapshots = []

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self.clocks = []
            self.in_batch = False
            self.fit_done = False

        def on_train_batch_begin(self, batch, logs=None):
            self.in_batch = True

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.c0 = _clocks()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)
            self.clocks.append(_delta(self.c0, _clocks()))
            self.in_batch = False
            if args.gdb_snapshots:
                where = (len(fits), epoch)
                threading.Thread(target=self._snap, args=(where,), daemon=True).start()

        def _snap(self, where):
            time.sleep(1.0)
            if self.in_batch or self.fit_done:
                return
            snapshots.append(_gdb_snapshot(Path(args.gdb_snapshots), *where))
            print(f"  stall after epoch {where[1]} of fit {where[0]}: {snapshots[-1]}")

    fits = []
    for i in range(args.fits):
        gc.collect()
        keras.utils.set_random_seed(0)
        model = compile_adamw(build_cnn(seed=0), 2e-3)
        timer = EpochTimes()
        faults = _major_faults()
        c0 = _clocks()
        t0 = time.perf_counter()
        if args.plain_dataset:
            model.fit(data, epochs=2, verbose=0, callbacks=[timer])
        else:
            model.fit(x, y, batch_size=128, epochs=2, verbose=0, callbacks=[timer])
        wall = time.perf_counter() - t0
        timer.fit_done = True
        clocks = _delta(c0, _clocks())
        fits.append(
            {
                "wall_s": wall,
                "epoch_s": timer.times,
                "major_faults": _major_faults() - faults,
                "clocks": clocks,
                "epoch_clocks": timer.clocks,
            }
        )
        print(
            f"fit {i}: {wall:.2f} s, epochs "
            + ", ".join(f"{t:.2f}" for t in timer.times)
            + f" s, {fits[-1]['major_faults']} major faults; process CPU {clocks['cpu_s']:.2f} s,"
            f" machine idle {clocks['idle_s']:.2f} s, steal {clocks['steal_s']:.2f} s; epochs' CPU "
            + ", ".join(f"{c['cpu_s']:.2f}" for c in timer.clocks),
            flush=True,
        )
    fastest = min(f["wall_s"] for f in fits)
    stalled = sum(f["wall_s"] > 1.3 * fastest for f in fits)
    print(f"{stalled} of {len(fits)} fits stalled (> 1.3 x the fastest, {fastest:.2f} s)")
    name = (
        "tf_stalls"
        + ("_sampler" if args.sampler else "")
        + ("_plain_dataset" if args.plain_dataset else "")
        + ("_no_autotune" if args.no_autotune else "")
    )
    out = args.output or Path(__file__).resolve().parent / "results" / f"{name}.json"
    write_report(
        report_header(
            __file__,
            argv,
            sampler=args.sampler,
            plain_dataset=args.plain_dataset,
            no_autotune=args.no_autotune,
            gdb_snapshots=snapshots,
            fits=fits,
            stalled=stalled,
        ),
        out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
