"""The LR ceiling: a task-free model never raises a run's LR above what its tasks were best at.

By value: the kinds of optimizer names, what a model without a ceiling or an unknown
optimizer gets, the candidates the ceiling drops (and the anneals from above it that it
keeps), the planner's plans with and without it (a switching model that would raise above
it otherwise), the ceiling fitted from runs whose best configs are known, the model file's
section (validated, written by training), and the optimizer name the callback passes.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

import keras_lode
from keras_lode.model.controlled import random_controlled
from keras_lode.model.lr_ceiling import ceiling_for, optimizer_kind
from keras_lode.planning.candidates import candidate_library
from keras_lode.runs.run import Run
from keras_lode.train.lr_ceiling import fit_lr_ceiling

ROOT = Path(__file__).resolve().parent.parent


def test_optimizer_kinds_and_what_a_model_without_a_ceiling_gives():
    assert optimizer_kind("AdamW") == optimizer_kind("adam") == optimizer_kind("Nadam") == "adam"
    assert optimizer_kind("SGD") == "sgd"
    assert optimizer_kind("RMSprop") is None and optimizer_kind(None) is None
    assert ceiling_for(None, "AdamW")[0] is None
    section = {"adam": 3e-3, "sgd": 0.05}
    assert ceiling_for(section, "AdamW")[0] == 3e-3
    assert ceiling_for(section, "SGD")[0] == 0.05
    value, why = ceiling_for(section, "RMSprop")
    assert value == 0.0 and "does not raise" in why and "'RMSprop'" in why
    assert ceiling_for({"sgd": 0.05}, "Adam")[0] == 0.0  # a kind the model has no task of


def test_the_ceiling_drops_raises_above_it_and_keeps_anneals_from_above_it():
    lib = candidate_library(1e-3, 10, lr_range=(1e-5, 1.0), starts=(0.5, 1.0, 2.0, 4.0),
                            max_lr=2.5e-3)  # fmt: skip
    assert "constant 2x" in lib.names and "cosine 2x->0.2x" in lib.names
    assert "constant 4x" not in lib.names and "cosine 4x->0.4x" not in lib.names
    assert "above the LR ceiling 0.0025" in lib.rejected["constant 4x"]
    assert lib.lr[1:].max() <= 2.5e-3 * (1 + 1e-9)
    # Above the ceiling already: the planner's cap is the current LR (it may hold or anneal,
    # never rise further).
    high = candidate_library(1e-2, 10, lr_range=(1e-5, 1.0), max_lr=1e-2)
    assert "constant 1x" in high.names and "cosine 0.5x->0.05x" in high.names
    assert "constant 2x" not in high.names and "above the LR ceiling 0.01" in high.rejected[
        "constant 2x"]  # fmt: skip
    # No ceiling: the 4x raise is there.
    free = candidate_library(1e-3, 10, lr_range=(1e-5, 1.0), starts=(0.5, 1.0, 2.0, 4.0))
    assert "constant 4x" in free.names


def _history(K, n, lr):
    t = np.arange(1, K + 1)
    loss = 2.0 * np.exp(-t / K)
    metric = 0.5 + 0.4 * (1 - np.exp(-2 * t / K))
    return np.stack([loss, np.full(K, np.log(lr)), metric], axis=1)[: n + 1]


@pytest.fixture(scope="module")
def model():
    # A random task-free model with a ceiling that, without it, switches to a raise: every
    # candidate but the default starts at 2x or 4x the current LR.
    return random_controlled(3, members=3, window=5, horizon=20, features="relative",
                             lr_range=(1e-3, 10.0), field_scale=3.0,
                             planner={"lr_ceiling": {"adam": 2.5e-3, "sgd": 0.05}})  # fmt: skip


def _plan(model, lr, **options):
    K, n = 40, 15
    return keras_lode.plan(model, _history(K, n, lr), position=n, total_points=K, kappa=0.0,
                           margin=-1.0, starts=(2.0, 4.0), **options)  # fmt: skip


def test_the_planner_keeps_a_task_free_plan_under_the_optimizers_ceiling(model):
    free = _plan(model, 1e-3, max_lr=1.0)  # a ceiling far above: as if there were none
    assert free.switched and free.lr.max() > 2.5e-3  # it would raise above the ceiling
    capped = _plan(model, 1e-3, optimizer="AdamW")
    assert capped.switched and capped.lr.max() <= 2.5e-3 * (1 + 1e-9)
    assert capped.lr.max() > 1e-3  # a raise within the ceiling is still open
    assert any("LR ceiling" in why for why in capped.rejected.values())
    # An optimizer of no kind the ceiling knows, or none named: no raise at all.
    for optimizer in ("RMSprop", None):
        p = _plan(model, 1e-3, optimizer=optimizer)
        assert not p.switched and p.lr.max() == pytest.approx(1e-3)
    # The call's max_lr (in the run's LRs) overrides the model's: below the 2x start, no
    # raise is left; inf lifts the model's ceiling.
    own = _plan(model, 1e-3, optimizer="AdamW", max_lr=1.5e-3)
    assert not own.switched and own.lr.max() == pytest.approx(1e-3)
    lifted = _plan(model, 1e-3, optimizer="AdamW", max_lr=float("inf"))
    np.testing.assert_allclose(lifted.lr, free.lr)
    lifted32 = _plan(model, 1e-3, optimizer="AdamW", max_lr=np.float32("inf"))
    np.testing.assert_allclose(lifted32.lr, free.lr)
    # An optimizer object is read by its class (a LossScaleOptimizer by the one it wraps).
    wrapped = types.SimpleNamespace(inner_optimizer=types.SimpleNamespace())
    assert optimizer_kind(wrapped) is None and optimizer_kind("adamw") == "adam"


def test_the_ceiling_holds_against_the_runs_own_lr_not_the_grids():
    # The grid's last point lies up to K / horizon run points back: after a step down from
    # 1e-2 to 1e-3 it still reads 1e-2, and a "hold 1x" there would be a 10x raise of the
    # run's LR. The cap is the ceiling floored at the run's current LR, in run LRs.
    model = random_controlled(3, members=3, window=3, horizon=10, features="relative",
                              lr_range=(1e-3, 10.0), field_scale=3.0,
                              planner={"lr_ceiling": {"adam": 2.5e-3}})  # fmt: skip
    K, n = 40, 16
    rows = _history(K, n, 1e-2)
    rows[16:, 1] = np.log(1e-3)  # stepped down at point 16; the grid's last point is 15
    free = keras_lode.plan(model, rows, position=n, total_points=K, kappa=0.0, margin=-1.0,
                           starts=(1.0, 2.0), max_lr=float("inf"))  # fmt: skip
    assert free.switched and free.lr.max() > 2.5e-3  # without the ceiling: back up
    for optimizer, cap in (("AdamW", 2.5e-3), ("RMSprop", 1e-3)):
        p = keras_lode.plan(model, rows, position=n, total_points=K, kappa=0.0, margin=-1.0,
                            starts=(0.1, 1.0, 2.0), optimizer=optimizer)  # fmt: skip
        assert p.lr.max() <= cap * (1 + 1e-9), optimizer
        assert len(p.names) > 1 and p.paths[1:].max() <= cap * (1 + 1e-9), optimizer
        # Judged against the run's LR: holding the grid's 1e-2 is no candidate at all.
        assert "LR ceiling" in p.rejected["constant 1x"], optimizer


def test_fit_lr_ceiling_takes_the_lowest_best_peak_per_optimizer_kind():
    def runs(task, optimizer, finals, mode="max"):
        out = []
        for peak, final in finals.items():
            for seed in (0, 1):
                t = np.arange(1, 11)
                metric = np.linspace(0.1, final, 10) if mode == "max" else np.linspace(5, final, 10)
                meta = {"task": task, "optimizer": optimizer, "schedule": "cosine",
                        "peak_lr": peak, "seed": seed, "mode": mode}  # fmt: skip
                out.append(Run(step=t, epoch=t / 5, lr=np.full(10, peak), loss=1 / t,
                               metric=metric + 0.001 * seed, meta=meta))  # fmt: skip
        return out

    zoo = (
        runs("a", "AdamW", {1e-3: 0.8, 3e-3: 0.9, 1e-2: 0.7})  # best 3e-3
        + runs("b", "Adam", {1e-3: 0.6, 1e-2: 0.65})  # best 1e-2
        + runs("e", "AdamW", {5e-3: 2.0, 2e-2: 1.8}, mode="min")  # lowest is best: 2e-2
        + runs("c", "SGD", {0.05: 0.9, 0.1: 0.8})  # best 0.05
        + runs("d", None, {0.5: 0.9})  # no optimizer named: left out
    )
    section, record = fit_lr_ceiling(zoo)
    assert section == {"adam": pytest.approx(3e-3), "sgd": pytest.approx(0.05)}
    assert record["tasks"]["b"]["peak_lr"] == pytest.approx(1e-2)
    assert record["tasks"]["e"]["peak_lr"] == pytest.approx(2e-2)
    assert record["tasks"]["a"]["best"] == "cosine@0.003"
    assert set(record["left_out"]) == {"d"}
    assert fit_lr_ceiling(runs("d", "RMSprop", {0.5: 0.9}))[0] == {}
    # Runs that would make a ceiling nobody's, or cannot give one, are left out, never raise:
    # no task named (a mixture of an accuracy and a loss task), a peak that is no LR.
    nameless = runs("x", "AdamW", {1e-3: 0.8}) + runs("y", "AdamW", {1e-2: 2.0}, mode="min")
    for r in nameless:
        r.meta.pop("task")
    broken = runs("z", "AdamW", {1e-3: 0.8})
    for r in broken:
        r.meta["peak_lr"] = "fast"
    section, record = fit_lr_ceiling(nameless + broken + runs("c", "SGD", {0.05: 0.9}))
    assert section == {"sgd": pytest.approx(0.05)}
    assert set(record["left_out"]) == {"(no task)", "z"}
    # Near-best: a higher peak within `tolerance` seed sd of the best counts (the seeds of
    # each config differ by 0.001: sd 0.00071; 1e-2 trails 3e-3 by 0.0005, 3e-2 by 0.1).
    tie = runs("t", "AdamW", {1e-3: 0.8, 3e-3: 0.9, 1e-2: 0.8995, 3e-2: 0.8})
    assert fit_lr_ceiling(tie)[0] == {"adam": pytest.approx(3e-3)}
    section, record = fit_lr_ceiling(tie, tolerance=1.0)
    assert section == {"adam": pytest.approx(1e-2)}
    assert record["tasks"]["t"]["best_peak_lr"] == pytest.approx(3e-3)
    assert fit_lr_ceiling(tie, tolerance=0.5)[0] == {"adam": pytest.approx(3e-3)}
    mixed = runs("m", "AdamW", {1e-3: 0.8}) + runs("m", "AdamW", {1e-2: 2.0}, mode="min")
    section, record = fit_lr_ceiling(mixed)
    assert section == {} and "mix" in record["left_out"]["m"]


@pytest.mark.parametrize(
    "section, found",
    [
        ({"adam": -1e-3}, "-0.001"),
        ({"lion": 1e-4}, "'lion'"),
        ({}, "{}"),
        ({"sgd": True}, "True"),
        ({"sgd": float("nan")}, "nan"),
        ({"sgd": "0.1"}, "'0.1'"),
    ],  # fmt: skip
)
def test_a_malformed_ceiling_in_a_model_file_is_refused_naming_it(tmp_path, section, found):
    from keras_lode.model.io import read_model_file, save_model

    path = tmp_path / "m.npz"
    random_controlled(0, members=2, window=5, horizon=20, features="relative",
                      lr_range=(1e-3, 10.0)).save(path)  # fmt: skip
    config, weights = read_model_file(path)
    config["planner"]["lr_ceiling"] = section
    # Writing and reading a model file go through one validation.
    with pytest.raises(ValueError, match="planner.lr_ceiling") as e:
        save_model(path, config, weights)
    assert found in str(e.value)
    config["planner"]["lr_ceiling"] = {"adam": 3e-3}
    save_model(path, config, weights)
    assert keras_lode.load_model(path).planner_defaults["lr_ceiling"] == {"adam": 3e-3}


def test_training_writes_the_ceiling_into_a_task_free_model_file(tmp_path):
    from keras_lode.runs.synthetic import synthetic_runs
    from keras_lode.train.ensemble import fit_controlled

    fams = ("cosine", "constant")
    zoo = []
    for task, optimizer, scale in (("a", "AdamW", 1.0), ("b", "SGD", 10.0)):
        for r in synthetic_runs(8, points=20, points_per_epoch=5, seed=0, families=fams,
                                peak_lrs=(3e-3, 1e-2)):  # fmt: skip
            meta = {**r.meta, "task": task, "optimizer": optimizer,
                    "peak_lr": r.meta["peak_lr"] * scale}  # fmt: skip
            zoo.append(Run(r.step, r.epoch, r.lr * scale, r.loss, r.metric, meta=meta))
    fit = fit_controlled(zoo, members=2, window=4, steps=5, workers=1, verbose=False,
                         features="relative", horizon=20)  # fmt: skip
    expected, record = fit_lr_ceiling(zoo)
    assert set(expected) == {"adam", "sgd"}
    # The SGD task is the Adam task's runs with LRs x10: its ceiling is 10x.
    assert expected["sgd"] == pytest.approx(10 * expected["adam"])
    fit.model.save(tmp_path / "zoo.npz")
    loaded = keras_lode.load_model(tmp_path / "zoo.npz")
    assert loaded.planner_defaults["lr_ceiling"] == pytest.approx(expected)
    assert fit.training["lr_ceiling"]["tasks"] == record["tasks"]


def test_the_callback_passes_the_fits_optimizer_and_logs_its_ceiling_once(model, caplog):
    import keras

    from keras_lode.callbacks.replanning import _ceiling_options

    def callback(optimizer, overrides=None):
        return types.SimpleNamespace(kind="controlled", planner_overrides=overrides or {},
                                     model=types.SimpleNamespace(optimizer=optimizer),
                                     lode=model)  # fmt: skip

    cb = callback(keras.optimizers.AdamW())
    with caplog.at_level("INFO", logger="keras_lode.callbacks.replanning"):
        assert _ceiling_options(cb) == {"optimizer": "AdamW"}
        assert _ceiling_options(cb) == {"optimizer": "AdamW"}
    logged = [r.getMessage() for r in caplog.records if "LR ceiling" in r.getMessage()]
    assert len(logged) == 1 and "0.0025" in logged[0]
    wrapped = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    assert _ceiling_options(callback(wrapped)) == {"optimizer": "SGD"}
    assert _ceiling_options(callback(keras.optimizers.SGD(), {"max_lr": 0.1})) == {}
    # An option left at None is no choice: the fit's optimizer still picks the ceiling.
    assert _ceiling_options(callback(keras.optimizers.SGD(), {"max_lr": None})) == {
        "optimizer": "SGD"}  # fmt: skip
    # ... and the options the planner gets name it once (no duplicate keyword for plan()).
    from keras_lode.callbacks.replanning import _with_ceiling

    given = {"optimizer": None, "max_lr": None, "kappa": 0.5}
    assert _with_ceiling(callback(keras.optimizers.SGD(), given)) == {
        "optimizer": "SGD", "max_lr": None, "kappa": 0.5}  # fmt: skip
    assert _with_ceiling(callback(keras.optimizers.SGD(), {"optimizer": "AdamW"})) == {
        "optimizer": "AdamW"}  # fmt: skip
    # An optimizer the ceiling does not know: no raises, and the user is told.
    with pytest.warns(keras_lode.LODEWarning, match="RMSprop.*does not raise"):
        assert _ceiling_options(callback(keras.optimizers.RMSprop())) == {"optimizer": "RMSprop"}


def test_a_fit_tells_its_ceiling_once_per_fit():
    from keras_lode.callbacks.lode_callback import LODECallback

    source = Path(LODECallback.__module__.replace(".", "/") + ".py")
    text = (ROOT / source).read_text()
    # Reset with the other once-per-fit flags at train begin.
    assert "self.ceiling_logged = False" in text
