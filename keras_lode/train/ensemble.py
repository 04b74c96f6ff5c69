"""Training the controlled ensemble: data from every cut point, members in parallel, calibration.

`fit_controlled(runs)` holds out the runs of some seeds, trains M members on the others
(each on its own bootstrap resample of the runs, from its own seed; in parallel processes
where cores allow), calibrates the ensemble's spread on the held-out runs and measures its
offline decision skill there (`keras_lode.train.decision`). The result exports to one
pickle-free model file with `kind: "controlled"`.

A training example is a (run, cut point n) pair: the encoder reads the W points up to n,
the ODE is driven by the run's *actual* ln-LR path from n to the end, and the loss is the
mean squared error of the normalized training loss and validation metric over the rest of
the run, plus `final_weight` times that of the final metric (what a planner scores).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import time
from collections import Counter
from typing import Any

import numpy as np

from keras_lode._checks import check_int, check_number
from keras_lode.model.features import FEATURES, relative_run
from keras_lode.model.options import resolve_options
from keras_lode.runs.run import runs_mode
from keras_lode.train.windows import (
    RESAMPLES,
    controlled_batch,
    fit_normalization,
    member_runs,
    prepare_runs,
)

logger = logging.getLogger("keras_lode.train")

__all__ = ["ControlledFit", "ControlledFitConfig", "fit_controlled", "split_by_seed"]


@dataclasses.dataclass
class ControlledFit:
    """What `fit_controlled` returns.

    Attributes:
        members: the trained `ControlledMember`s (torch, float32).
        model: the NumPy `ControlledODE` of the ensemble, calibrated.
        training: the JSON summary stored in the file's `training` section (data,
            hyperparameters, timings, `decision` skill, calibration).
    """

    members: list
    model: object
    training: dict

    def export(self, path, **metadata):
        """Writes the calibrated ensemble to `path` (a pickle-free `.npz`)."""
        from keras_lode.model.config import json_clean
        from keras_lode.model.io import save_model
        from keras_lode.train.member import ensemble_weights

        config = self.model.config
        config["metadata"].update(json_clean(metadata, "metadata"))
        save_model(path, config, ensemble_weights(self.members))
        return path


def split_by_seed(runs, holdout_seeds=None) -> tuple[list[int], list[int]]:
    """Indices of training and held-out runs; by default the largest seed is held out.

    Raises:
        ValueError: fewer than two seeds (nothing to hold out), or an empty side.
    """
    seeds = [r.meta.get("seed") for r in runs]
    known = sorted({s for s in seeds if s is not None})
    if holdout_seeds is None:
        if len(known) < 2:
            raise ValueError(
                "Calibrating the ensemble needs runs of at least 2 seeds (one is held out). "
                f"Received seeds {known}; pass holdout_seeds= or record more seeds."
            )
        holdout_seeds = [known[-1]]
    hold = set(holdout_seeds)
    held = [i for i, s in enumerate(seeds) if s in hold]
    train = [i for i, s in enumerate(seeds) if s not in hold]
    if not held or not train:
        raise ValueError(
            f"holdout_seeds={sorted(hold)} leaves {len(train)} training and {len(held)} "
            f"held-out runs (seeds present: {known}); both must be non-empty."
        )
    return train, held


# ------------------------------------------------------------------------ one member
def _train_member(payload, progress=None):
    """Trains one member; runs in a worker process (or inline).

    `progress`: a callable or a queue (`put`) told the number of steps done, every ~2% of
    them, so that a bar moves while a member trains.
    """
    report = getattr(progress, "put", progress)
    import torch

    from keras_lode.train.member import ControlledMember

    torch.set_num_threads(1)
    seed = payload["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = payload["y"]
    hp = payload["hyper"]
    idx = member_runs(
        payload["train"], payload["seeds"], payload["resample"], payload["index"], rng
    )
    member = ControlledMember(
        hp["hidden"],
        hp["state"],
        hp["width"],
        hp["depth"],
        step_size=hp["step_size"],
        horizon=y.shape[1],
        span=hp["span"],
        mean=payload["mean"],
        std=payload["std"],
    )
    std = torch.tensor(payload["std"][[0, 2]], dtype=torch.float32)
    mean = torch.tensor(payload["mean"][[0, 2]], dtype=torch.float32)
    opt = torch.optim.Adam(member.parameters(), lr=hp["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=hp["steps"], eta_min=hp["lr"] / 20
    )
    t0 = time.perf_counter()
    history = []
    chunk, reported = max(1, hp["steps"] // 50), 0
    for step in range(hp["steps"]):
        b = controlled_batch(y, idx, rng, hp["batch_size"], hp["window"], member.time_scale)
        tb = {k: torch.as_tensor(v) for k, v in b.items()}
        h0 = member.encode(tb["t_window"].float(), tb["window"].float())
        u = (tb["log_lr"].float() - member.mean[1]) / member.std[1]
        out = member.integrate(h0, tb["knots"].float(), u, tb["offset"].float()).transpose(0, 1)
        target = (tb["target"].float() - mean) / std
        err = (out - target) ** 2
        mask = tb["mask"].float()[..., None]
        loss = (err * mask).sum() / (mask.sum() * 2)
        rows = torch.arange(out.shape[0])
        final = err[rows, tb["last"], 1].mean()
        total = loss + hp["final_weight"] * final
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(member.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == hp["steps"] - 1:
            history.append([step, loss.detach().item(), final.detach().item()])
        if report is not None and (step + 1 - reported >= chunk or step == hp["steps"] - 1):
            report(step + 1 - reported)
            reported = step + 1
    return {
        "state": {k: v.detach().numpy() for k, v in member.state_dict().items()},
        "history": history,
        "seconds": time.perf_counter() - t0,
        "seed": seed,
    }


# ------------------------------------------------------------------------ the ensemble
@dataclasses.dataclass(frozen=True)
class ControlledFitConfig:
    """The options of `fit_controlled`, checked (and made int/float) when it is built.

    Attributes:
        members: ensemble size M.
        holdout_seeds: seeds whose runs calibrate the spread and measure decision skill
            (default: the largest seed); members never see them.
        window: log points the encoder reads.
        hidden, state, width, depth: member sizes.
        step_size, span: RK4 step and the model time of a whole run.
        steps, batch_size, lr: Adam steps (cosine-decayed LR), (run, cut) pairs per step.
        final_weight: extra weight of the final metric's squared error.
        seed: base seed; member i uses `seed + i` (init, bootstrap, batches).
        resample: how the members' training runs differ (`member_runs`): `"bootstrap"`
            (default), `"none"` or `"seeds"` (each leaves out one training seed).
        workers: parallel processes (default: min(members, CPU cores)); 1 trains inline.
        coverage_level: the held-out coverage of mean +/- 2 sd that calibration targets.
        verbose: progress bar over members and a summary line.
        features: `"absolute"` (the runs' raw channels: a model of their task) or
            `"relative"` (task-free: each run resampled to `horizon` points and read
            relative to its first point, `keras_lode.model.features`; runs of several
            tasks, lengths, optimizers and metric directions train one model).
        horizon: log points of a task-free model's grid (relative features only).

    Raises:
        TypeError, ValueError: an option of the wrong type or out of range, named.
    """

    members: int = 5
    holdout_seeds: Any = None
    window: int = 10
    hidden: int = 24
    state: int = 24
    width: int = 32
    depth: int = 2
    step_size: float = 0.5
    span: float = 10.0
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    final_weight: float = 1.0
    seed: int = 0
    workers: int | None = None
    coverage_level: float = 0.95
    verbose: bool = True
    features: str = "absolute"
    horizon: int = 50
    resample: str = "bootstrap"

    def __post_init__(self):
        if self.resample not in RESAMPLES:
            raise ValueError(
                f"Argument `resample` must be one of {RESAMPLES}. Received: {self.resample!r}"
            )
        if self.features not in FEATURES:
            raise ValueError(
                f"Argument `features` must be one of {FEATURES}. Received: {self.features!r}"
            )
        object.__setattr__(self, "horizon", check_int("horizon", self.horizon, minimum=2))
        ints = {
            "members": 1,
            "window": 2,
            "steps": 1,
            "batch_size": 1,
            "hidden": 1,
            "state": 1,
            "width": 1,
            "depth": 0,
        }
        for name, minimum in ints.items():
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=minimum))
        numbers = {
            "final_weight": False,
            "coverage_level": True,
            "step_size": True,
            "span": True,
            "lr": True,
        }
        for name, strict in numbers.items():
            value = check_number(name, getattr(self, name), minimum=0, strict=strict)
            object.__setattr__(self, name, value)
        if self.workers is not None:
            object.__setattr__(self, "workers", check_int("workers", self.workers))


def fit_controlled(runs, config: ControlledFitConfig | None = None, **options) -> ControlledFit:
    """Trains a calibrated controlled ensemble on recorded runs.

    Args:
        runs: `keras_lode.Run`s sharing P and K (diverged runs are skipped and counted).
        config: a `ControlledFitConfig` (default: its defaults).
        **options: fields of `ControlledFitConfig` to set (`members`, `holdout_seeds`,
            `window`, `hidden`, `state`, `width`, `depth`, `step_size`, `span`, `steps`,
            `batch_size`, `lr`, `final_weight`, `seed`, `workers`, `coverage_level`,
            `verbose`).

    Returns:
        A `ControlledFit`.

    Raises:
        TypeError, ValueError: bad options, unusable runs, or runs of fewer than two
            seeds (nothing to hold out).
    """
    from keras_lode.model import ControlledODE
    from keras_lode.model.trust_region import TrustRegion
    from keras_lode.train import decision
    from keras_lode.train.lr_ceiling import fit_lr_ceiling
    from keras_lode.train.member import ensemble_config, ensemble_weights

    cfg = resolve_options(ControlledFitConfig, config, options, "keras_lode.train.fit_controlled")
    task_runs = runs
    # A task-free model's LR ceiling per optimizer kind (keras_lode.model.lr_ceiling).
    ceiling = fit_lr_ceiling(task_runs) if cfg.features == "relative" else ({}, None)
    if cfg.features == "relative":
        runs, unusable = relative_runs(runs, cfg.horizon)
        if unusable and cfg.verbose:
            print(f"Skipped {unusable} run(s) without a usable first log point.")
    data = prepare_runs(runs, window=cfg.window + 1)
    rs = data.runs
    train, held = split_by_seed(rs, cfg.holdout_seeds)
    y = data.y
    mean, std = fit_normalization(y[train])
    payloads = _member_payloads(cfg, y, train, [r.meta.get("seed") for r in rs], mean, std)
    workers = min(cfg.members, os.cpu_count() or 1) if cfg.workers is None else cfg.workers
    t0 = time.perf_counter()
    results = _run_members(payloads, workers, cfg.verbose)  # in the order they finished
    wall = time.perf_counter() - t0
    by_seed = sorted(results, key=lambda r: r["seed"])
    trained = _load_members(by_seed, cfg, mean, std, horizon=y.shape[1])
    lr_vals = np.exp(y[train][..., 1])
    lr_range = (float(lr_vals.min()), float(lr_vals.max()))
    # The metric's direction, from the runs' metadata (a task-free model's is "max": it
    # reads improvements).
    mode = runs_mode(runs)
    base_config = ensemble_config(
        trained,
        window=cfg.window,
        lr_range=lr_range,
        points_per_epoch=data.points_per_epoch,
        mode=mode,
        features=cfg.features,
    )
    raw = ControlledODE(base_config, ensemble_weights(trained))
    held_runs = [rs[i] for i in held]
    train_runs = [rs[i] for i in train]
    cal = decision.calibrate(raw, held_runs, level=cfg.coverage_level)
    skill = decision.decision_skill(raw, held_runs, train_runs, calibration=cal)
    training = {
        "kind": "controlled",
        **(_tasks_summary(task_runs, ceiling) if cfg.features == "relative" else {}),
        **_data_summary(len(runs), data, train, held, lr_range),
        "hyperparameters": {
            **_hyperparameters(cfg),
            "members": cfg.members,
            "seed": cfg.seed,
            "resample": cfg.resample,
        },
        "wall_time_s": round(wall, 2),
        "member_seconds": [round(r["seconds"], 2) for r in results],
        "workers": workers,
        "final_train_loss": [r["history"][-1][1:] for r in by_seed],
        "calibration": cal,
        "decision": skill,
    }
    # The LR changes the training runs made from each kind of state: the control planner
    # proposes only those (keras_lode.planning.candidates).
    trust = TrustRegion.from_runs(train_runs)
    planner = {"trust": trust.to_json(), **({"lr_ceiling": ceiling[0]} if ceiling[0] else {})}
    config = ensemble_config(
        trained,
        window=cfg.window,
        lr_range=lr_range,
        points_per_epoch=data.points_per_epoch,
        calibration={"sd_scale": cal["sd_scale"], "sd_floor": cal["sd_floor"]},
        planner=planner,
        training=training,
        mode=mode,
        features=cfg.features,
    )
    model = ControlledODE(config, ensemble_weights(trained))
    if cfg.verbose:
        print(decision.format_skill(skill, cal))
    return ControlledFit(members=trained, model=model, training=config["training"])


def relative_runs(runs, horizon: int) -> tuple[list, int]:
    """`(runs with task-free features, number skipped)`: runs whose first log point is no
    usable reference (non-finite, or a minimized metric <= 0) are skipped and counted."""
    out, skipped = [], 0
    for run in runs:
        try:
            out.append(relative_run(run, horizon))
        except ValueError:
            skipped += 1
    if not out:
        raise ValueError(f"None of the {skipped} run(s) has a usable first log point.")
    return out, skipped


def _tasks_summary(runs, ceiling) -> dict:
    """`{"runs_per_task": {task: runs}, "lr_ceiling": record}` of a task-free model's
    training runs (its model card) and where its LR ceiling came from."""
    counts = dict(sorted(Counter(str(r.meta.get("task")) for r in runs).items()))
    return {"runs_per_task": counts, "lr_ceiling": ceiling[1]}


def _member_payloads(cfg, y, train, seeds, mean, std) -> list[dict]:
    """What each member's worker gets: the data, its seed and which runs it may see."""
    hyper = _hyperparameters(cfg)
    return [
        dict(
            y=y,
            train=np.asarray(train),
            mean=mean,
            std=std,
            hyper=hyper,
            seed=cfg.seed + i,
            index=i,
            resample=cfg.resample,
            seeds=seeds,
        )  # fmt: skip
        for i in range(cfg.members)
    ]


def _hyperparameters(cfg) -> dict:
    """What each member trains with (sent to the worker processes, stored in the file)."""
    return dict(
        window=cfg.window,
        hidden=cfg.hidden,
        state=cfg.state,
        width=cfg.width,
        depth=cfg.depth,
        step_size=cfg.step_size,
        span=cfg.span,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        final_weight=cfg.final_weight,
    )


def _load_members(results, cfg, mean, std, *, horizon) -> list:
    """The trained `ControlledMember`s from the workers' state dicts, in `results` order."""
    import torch

    from keras_lode.train.member import ControlledMember

    trained = []
    for res in results:
        m = ControlledMember(
            cfg.hidden,
            cfg.state,
            cfg.width,
            cfg.depth,
            step_size=cfg.step_size,
            horizon=horizon,
            span=cfg.span,
        )
        m.set_normalization(mean, std)
        m.load_state_dict({k: torch.as_tensor(v) for k, v in res["state"].items()})
        trained.append(m)
    return trained


def _data_summary(n_runs, data, train, held, lr_range) -> dict:
    """The data part of the file's `training` section: counts, seeds, families, tasks."""
    rs = data.runs
    train_runs = [rs[i] for i in train]
    return {
        "n_runs": n_runs,
        "n_used": len(rs),
        "n_train": len(train),
        "n_heldout": len(held),
        "heldout_seeds": sorted({rs[i].meta.get("seed") for i in held}),
        "switched_runs": sum(1 for r in rs if r.meta.get("switch")),
        "skipped": data.skipped,
        "horizon": int(data.y.shape[1]),
        "points_per_epoch": data.points_per_epoch,
        "families": sorted({str(r.meta.get("schedule")) for r in train_runs}),
        "tasks": sorted({str(r.meta.get("task")) for r in rs}),
        "lr_range": list(lr_range),
    }


def _run_members(payloads, workers, verbose):
    """Trains the members (in `workers` processes), a bar counting their steps."""
    from tqdm.auto import tqdm

    total = sum(int(p["hyper"]["steps"]) for p in payloads)
    bar = tqdm(
        total=total, desc=f"LODE members (x{len(payloads)})", unit="step", disable=not verbose
    )
    try:
        if workers <= 1:
            return [_train_member(p, bar.update if verbose else None) for p in payloads]
        ctx = multiprocessing.get_context("spawn")
        with (
            ctx.Manager() as manager,
            concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex,
        ):
            queue = manager.Queue() if verbose else None
            pending = {ex.submit(_train_member, p, queue) for p in payloads}
            out = []
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.25, return_when=concurrent.futures.FIRST_COMPLETED
                )
                _drain(queue, bar)
                out.extend(f.result() for f in done)
            _drain(queue, bar)
            return out
    finally:
        bar.close()


def _drain(queue, bar) -> None:
    while queue is not None and not queue.empty():
        bar.update(queue.get())
