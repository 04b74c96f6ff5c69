"""Train the LODE on recorded runs: `keras_lode.train.fit(runs, ...)`.

The trainer of docs/design.md ("path-minimized" latent ODE, arXiv 2410.08923):

1. Runs are checked (`keras_lode.train.windows.prepare_runs`): unusable ones are
   skipped and counted, mixed time units are an error.
2. Whole runs are held out for validation (stratified by schedule family).
3. The channel normalization is fit on the training runs and stored in the model.
4. Each optimizer step draws a mini-batch of windows: `W` consecutive log points
   from `batch_size` training runs (one start per batch), encodes them, decodes
   the whole run from `t = 0` and scores it:

   `loss = MSE(decoded run, run) + alpha * sum_t ||h_{t+1} - h_t|| / ||spread||`

   in normalized channel units, where `h` is the ODE state path at the log points
   and `spread` the per-dimension batch std of the initial states `h_0`. Dividing
   by the spread makes the path term a Mahalanobis length under an isotropic
   metric set by the codes themselves: the model cannot shrink it by shrinking
   the latent space, only by making paths short compared with how far apart runs
   are — which is what lets a window from late in a run land on a code that
   decodes the whole run.
5. The validation MSE of held-out runs (windows at fixed starts) is measured every
   `eval_every` steps; training stops after `patience` evaluations without
   improvement and the best weights are restored.
6. The extrapolation evaluation (`keras_lode.train.evaluate`) runs on the
   held-out runs; everything lands in `report.training`, which `export` stores in
   the model file's `config["training"]`.

Training runs in float32 (fast on CPU); the returned model is converted to
float64, so exporting it and decoding in NumPy reproduces it to float64 precision.

Example:

```python
from keras_lode.runs.synthetic import synthetic_runs
from keras_lode.train import fit

model, report = fit(synthetic_runs(100), max_steps=1500, output="synthetic.npz")
print(report.training["extrapolation"]["overall"]["lode"]["mean"])
```
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from keras_lode._checks import check_int, check_number
from keras_lode.model.options import resolve_options
from keras_lode.runs.run import runs_mode
from keras_lode.train.evaluate import DEFAULT_FRACTIONS, extrapolation_errors
from keras_lode.train.model import TorchLatentODE
from keras_lode.train.windows import (
    WindowSampler,
    family_of,
    fit_normalization,
    prepare_runs,
    split_runs,
    validation_starts,
)

logger = logging.getLogger("keras_lode.train")

# Time units per run: the model sees `t * time_scale` with time_scale = _RUN_SPAN / K,
# so a run spans the same model time whatever its number of log points, and one
# step_size suits every horizon.
_RUN_SPAN = 10.0


@dataclass
class FitReport:
    """What `fit` did.

    Attributes:
        training: JSON-ready summary stored in the model file's `config["training"]`:
            data (tasks, runs used/skipped, families, peak-LR range, seeds, P,
            horizon), hyperparameters, steps, wall time, losses, validation error
            and the extrapolation evaluation.
        history: one dict per evaluation (`step`, `loss`, `mse`, `path`, `val_mse`).
        train_runs: the runs trained on.
        val_runs: the held-out runs.
        mean, std: the channel normalization (fit on `train_runs`).
    """

    training: dict
    history: list = field(default_factory=list)
    train_runs: list = field(default_factory=list)
    val_runs: list = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def to_json(self) -> str:
        """The training summary and history as JSON."""
        from keras_lode._json import dumps

        return dumps({"training": self.training, "history": self.history}, indent=2)


@dataclass(frozen=True)
class FitConfig:
    """The options of the generative trainer (`fit`), checked when it is built.

    Attributes:
        window: context window W in log points (the planner's window too).
        hidden, latent, state, width, depth: architecture sizes (docs/design.md).
        step_size: RK4 step in model time. A run spans 10 model-time units
            (`time_scale = 10 / K` by default), so 0.5 is 20 steps per run
            whatever K is.
        time_scale: log-point index -> model time; default `10 / K`.
        alpha: weight of the latent path-length term.
        max_steps: optimizer steps at most.
        batch_size: windows per step (>= 2: the latent spread is a batch std).
        lr: Adam learning rate (cosine-decayed to lr/10 over `max_steps`).
        val_fraction: share of runs held out when `val_runs` is None.
        patience: evaluations without a better validation MSE before stopping.
        eval_every: optimizer steps between validation evaluations.
        seed: seeds the split, the windows and the initialization: the same
            seed and data give the same model.
        threads: torch intra-op threads during training (restored afterwards).
        fractions: cut points of the extrapolation evaluation.
        evaluate: run the extrapolation evaluation on the held-out runs.
        progress: show a tqdm progress bar with the current losses, and print
            the count of skipped runs.

    Raises:
        TypeError, ValueError: an option of the wrong type or out of range, named.
    """

    window: int = 30
    hidden: int = 20
    latent: int = 20
    state: int = 20
    width: int = 20
    depth: int = 2
    step_size: float = 0.5
    time_scale: float | None = None
    alpha: float = 0.01
    max_steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    val_fraction: float = 0.2
    patience: int = 8
    eval_every: int = 50
    seed: int = 0
    threads: int = 1
    fractions: tuple = DEFAULT_FRACTIONS
    evaluate: bool = True
    progress: bool = True

    def __post_init__(self):
        minimums = {
            "window": 2,
            "hidden": 1,
            "latent": 1,
            "state": 1,
            "width": 1,
            "depth": 0,
            "max_steps": 1,
            "batch_size": 2,
            "patience": 1,
            "eval_every": 1,
            "threads": 1,
            "seed": 0,
        }
        for name, minimum in minimums.items():
            check_int(name, getattr(self, name), minimum=minimum)
        check_number("step_size", self.step_size, minimum=0, strict=True)
        check_number("alpha", self.alpha, minimum=0)
        check_number("lr", self.lr, minimum=0, strict=True)
        if self.time_scale is not None:
            check_number("time_scale", self.time_scale, minimum=0, strict=True)


def fit(
    runs, config: FitConfig | None = None, *, val_runs=None, output=None, metadata=None, **options
) -> tuple[TorchLatentODE, FitReport]:
    """Trains a `TorchLatentODE` on runs and (optionally) exports it.

    Args:
        runs: `keras_lode.Run` objects of one task (one P and one horizon K).
        config: a `FitConfig` (default: its defaults).
        val_runs: runs to validate on; default: hold out `val_fraction` of `runs`.
        output: if given, export the model file there.
        metadata: free-form JSON metadata for the model file (e.g. `task`).
        **options: fields of `FitConfig` to set (`window`, `hidden`, `latent`, `state`,
            `width`, `depth`, `step_size`, `time_scale`, `alpha`, `max_steps`,
            `batch_size`, `lr`, `val_fraction`, `patience`, `eval_every`, `seed`,
            `threads`, `fractions`, `evaluate`, `progress`).

    Returns:
        `(model, report)`: the trained float64 `keras_lode.train.TorchLatentODE` and a
        `FitReport`.

    Raises:
        TypeError, ValueError: for bad arguments or unusable runs (see
            `keras_lode.train.windows.prepare_runs` and `split_runs`).
    """
    cfg = resolve_options(FitConfig, config, options, "keras_lode.train.fit")
    started = time.perf_counter()
    runs = list(runs) if not isinstance(runs, str | bytes) and hasattr(runs, "__iter__") else runs
    data = prepare_runs(runs, window=cfg.window)
    n_input = len(runs)
    skipped_line = data.skipped_message(n_input)
    if skipped_line and cfg.progress:
        print(skipped_line, file=sys.stderr)
    train_list, val_list, y_train, y_val = _split(data, val_runs, cfg)
    time_scale = _RUN_SPAN / data.horizon if cfg.time_scale is None else cfg.time_scale
    mean, std = fit_normalization(y_train)

    with _torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        model = TorchLatentODE(
            channels=y_train.shape[-1],
            hidden=cfg.hidden,
            latent=cfg.latent,
            state=cfg.state,
            width=cfg.width,
            depth=cfg.depth,
            step_size=cfg.step_size,
            time_scale=time_scale,
            mean=mean,
            std=std,
        )
        history, best, stopped_early, steps_done, last = _train(model, y_train, y_val, cfg)
        model = model.double()
        train_seconds = time.perf_counter() - started
        extrapolation = None
        if cfg.evaluate:
            extrapolation = extrapolation_errors(
                model, val_list, train_list, window=cfg.window, fractions=cfg.fractions, std=std
            )

    training = _summary(
        data, n_input, train_list, val_list, hyper=_hyperparameters(cfg, time_scale)
    )
    training.update(
        {
            "steps": steps_done,
            "best_step": best["step"],
            "stopped_early": stopped_early,
            "wall_time_s": round(train_seconds, 2),
            "final_train_loss": last,
            "val_mse": best["val_mse"],
            "extrapolation": extrapolation,
        }
    )
    report = FitReport(
        training=training,
        history=history,
        train_runs=train_list,
        val_runs=val_list,
        mean=mean,
        std=std,
    )
    if output is not None:
        export(model, report, output, metadata=metadata)
    return model, report


@contextlib.contextmanager
def _torch_threads(threads):
    """At most `threads` torch intra-op threads inside the block; restored after it."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, previous_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)


def _split(data, val_runs, cfg):
    """`(train runs, held-out runs, y_train, y_val)`: a held-out share of `data`, or
    `val_runs` (which must share the training runs' time unit)."""
    if val_runs is None:
        train_idx, val_idx = split_runs(data.runs, val_fraction=cfg.val_fraction, seed=cfg.seed)
        train_list = [data.runs[i] for i in train_idx]
        val_list = [data.runs[i] for i in val_idx]
        return train_list, val_list, data.y[train_idx], data.y[val_idx]
    held = prepare_runs(val_runs, window=cfg.window)
    if (held.points_per_epoch, held.horizon) != (data.points_per_epoch, data.horizon):
        raise ValueError(
            "Argument `val_runs` must match the training runs' time unit. Received: "
            f"points_per_epoch={held.points_per_epoch}, horizon={held.horizon}; expected "
            f"points_per_epoch={data.points_per_epoch}, horizon={data.horizon}."
        )
    if len(data.runs) < 2:
        raise ValueError(f"Need at least 2 usable training runs. Received: {len(data.runs)}.")
    return data.runs, held.runs, data.y, held.y


def _hyperparameters(cfg, time_scale) -> dict:
    """The options a fit used, as stored in the model file's `training` section."""
    return {
        "window": cfg.window,
        "hidden": cfg.hidden,
        "latent": cfg.latent,
        "state": cfg.state,
        "width": cfg.width,
        "depth": cfg.depth,
        "step_size": float(cfg.step_size),
        "time_scale": float(time_scale),
        "alpha": float(cfg.alpha),
        "max_steps": cfg.max_steps,
        "batch_size": cfg.batch_size,
        "lr": float(cfg.lr),
        "patience": cfg.patience,
        "eval_every": cfg.eval_every,
        "seed": cfg.seed,
        "threads": cfg.threads,
    }


def replan_every(points_per_epoch: int, horizon: int, window: int) -> int:
    """Replan once per epoch, but at least 3 times after the first W points of a short run."""
    return max(1, min(points_per_epoch, (horizon - window) // 3))


def export(model: TorchLatentODE, report: FitReport, path, *, metadata: dict | None = None):
    """Writes the model file with the training summary; returns the NumPy model.

    Args:
        model: the trained model (from `fit`).
        report: its `FitReport`.
        path: destination `.npz`.
        metadata: free-form JSON metadata; `task` defaults to the runs' task.
    """
    t = report.training
    meta = {"task": t["tasks"][0] if len(t["tasks"]) == 1 else None}
    meta.update(metadata or {})
    return model.export(
        path,
        points_per_epoch=t["points_per_epoch"],
        horizon=t["horizon"],
        planner={
            "window": t["hyperparameters"]["window"],
            "lr_range": t["lr_range"],
            "replan_every": replan_every(
                t["points_per_epoch"], t["horizon"], t["hyperparameters"]["window"]
            ),
        },
        training=t,
        mode=t.get("mode", "max"),
        **meta,
    )


def _train(model, y_train, y_val, cfg):
    """Adam steps on windows of `y_train` until `cfg.max_steps` or early stopping; restores
    the weights of the best validation MSE on `y_val`.

    Returns:
        `(history, best, stopped_early, steps, last)`: one dict per evaluation, the best
        step and its validation MSE, whether training stopped early, the steps taken and
        the smoothed final training losses.
    """
    window, alpha, max_steps = cfg.window, float(cfg.alpha), cfg.max_steps
    sampler = WindowSampler(y_train, window=window, seed=cfg.seed)
    horizon = y_train.shape[1]
    t_all = torch.arange(horizon, dtype=torch.float32)
    std = torch.as_tensor(model.std, dtype=torch.float32)
    y_val_t = torch.as_tensor(y_val, dtype=torch.float32)
    starts = validation_starts(horizon, window)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg.lr))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max_steps, 1.0)))
    )
    best = {"step": 0, "val_mse": math.inf, "state": copy.deepcopy(model.state_dict())}
    history, bad_evals, stopped_early = [], 0, False
    running = None
    bar = tqdm(total=max_steps, disable=not cfg.progress, desc="LODE", unit="step", leave=False)
    step = 0
    try:
        for step in range(1, max_steps + 1):
            start, ctx, target = sampler.sample(cfg.batch_size)
            ctx_t = torch.as_tensor(ctx, dtype=torch.float32)
            target_t = torch.as_tensor(target, dtype=torch.float32)
            loss, mse, path = _loss(model, t_all, start, window, ctx_t, target_t, std, alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            values = (loss.item(), mse.item(), path.item())
            if not all(math.isfinite(v) for v in values):
                # A blown-up step: go back to the best weights rather than train on NaN.
                logger.warning("Non-finite LODE loss at step %d; restoring best weights.", step)
                model.load_state_dict(best["state"])
                stopped_early = True
                break
            running = (
                values
                if running is None
                else tuple(0.9 * r + 0.1 * v for r, v in zip(running, values, strict=True))
            )
            bar.update(1)
            if step % cfg.eval_every == 0 or step == max_steps:
                val_mse = _val_mse(model, t_all, y_val_t, starts, window, std)
                history.append(
                    {
                        "step": step,
                        "loss": running[0],
                        "mse": running[1],
                        "path": running[2],
                        "val_mse": val_mse,
                    }
                )
                bar.set_postfix(loss=f"{running[0]:.4f}", val=f"{val_mse:.4f}")
                if val_mse < best["val_mse"]:
                    best = {
                        "step": step,
                        "val_mse": val_mse,
                        "state": copy.deepcopy(model.state_dict()),
                    }
                    bad_evals = 0
                else:
                    bad_evals += 1
                    if bad_evals >= cfg.patience:
                        stopped_early = True
                        break
            elif step % 10 == 0:
                bar.set_postfix(loss=f"{running[0]:.4f}", mse=f"{running[1]:.4f}")
    finally:
        bar.close()
    model.load_state_dict(best["state"])
    last = None if running is None else {"loss": running[0], "mse": running[1], "path": running[2]}
    best_val = best["val_mse"] if math.isfinite(best["val_mse"]) else None
    return history, {"step": best["step"], "val_mse": best_val}, stopped_early, step, last


def _loss(model, t_all, start, window, ctx, target, std, alpha):
    z = model.encode(t_all[start : start + window], ctx)
    y, h = model.decode(t_all, z, return_states=True)
    mse = (((y - target) / std) ** 2).mean()
    steps = (h[:, 1:] - h[:, :-1]).norm(dim=-1).sum(dim=1)  # (B,) path lengths
    spread = h[:, 0].std(dim=0).norm()
    path = steps.mean() / (spread + 1e-6)
    return mse + alpha * path, mse, path


def _val_mse(model, t_all, y_val, starts, window, std) -> float:
    with torch.no_grad():
        total = 0.0
        for s in starts:
            z = model.encode(t_all[s : s + window], y_val[:, s : s + window])
            y = model.decode(t_all, z)
            total += float((((y - y_val) / std) ** 2).mean())
    return total / len(starts)


def _summary(data, n_input, train_runs, val_runs, *, hyper) -> dict:
    def sorted_unique(values):
        return sorted({v for v in values if v is not None}, key=str)

    lrs = np.concatenate([r.lr for r in train_runs])
    peaks = [r.meta.get("peak_lr") for r in train_runs if r.meta.get("peak_lr") is not None]
    return {
        "tasks": sorted_unique(r.meta.get("task") for r in train_runs + val_runs),
        "mode": runs_mode(train_runs + val_runs),
        "n_runs": n_input,
        "n_used": len(data.runs),
        "n_train": len(train_runs),
        "n_val": len(val_runs),
        "skipped": data.skipped,
        "families": sorted_unique(family_of(r) for r in train_runs),
        "peak_lr_range": [float(min(peaks)), float(max(peaks))] if peaks else None,
        "lr_range": [float(lrs.min()), float(lrs.max())],
        "seeds": sorted_unique(r.meta.get("seed") for r in train_runs),
        "points_per_epoch": data.points_per_epoch,
        "horizon": data.horizon,
        "val_run_ids": [r.run_id for r in val_runs],
        "hyperparameters": hyper,
    }
