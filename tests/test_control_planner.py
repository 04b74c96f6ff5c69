"""The control planner: candidate library, trust region and the lower-bound decision rule.

The planner is tested with hand-made controlled models whose predictions are known
exactly: `FakeControlled.predict` scores a candidate path by a formula of its LRs, and
gives each member an offset so that the ensemble's spread is chosen per candidate.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import keras_lode
from keras_lode.model.controlled import random_controlled
from keras_lode.planning import (
    ControlPlan,
    TrustRegion,
    candidate_library,
    plan,
    plan_control,
    planner_options,
)
from keras_lode.runs.synthetic import schedule_lr, synthetic_run, synthetic_switched_run

K = 50
LR_RANGE = (1e-5, 5e-2)


class FakeControlled:
    """A controlled model whose final metric is `score(lr path)` plus per-member offsets.

    `score(names_lr)` gets the (C, R) candidate LRs (exp of log_lr[:, 1:]) and returns
    (C,) means; `spread_of(lr)` returns (C,) per-candidate member offsets' scale.
    """

    kind = "controlled"
    window = 5
    horizon = K
    points_per_epoch = 10

    def __init__(self, score, spread_of=None, members=5, trust=None):
        self.score = score
        self.spread_of = spread_of or (lambda lr: np.zeros(lr.shape[0]))
        self.members = members
        self.lr_range = LR_RANGE
        self.planner_defaults = {"lr_range": list(LR_RANGE)}
        if trust is not None:
            self.planner_defaults["trust"] = trust.to_json()
        self.calls = []

    def predict(self, t_window, window, t, log_lr):
        self.calls.append((np.asarray(t_window), np.asarray(t), np.asarray(log_lr)))
        lr = np.exp(log_lr[:, 1:])
        mean = self.score(lr)
        scale = self.spread_of(lr)
        offsets = np.linspace(-1.0, 1.0, self.members)[:, None] * scale[None, :]
        out = np.zeros((self.members, lr.shape[0], log_lr.shape[1], 2))
        out[:, :, :, 0] = 1.0
        out[:, :, -1, 1] = mean[None, :] + offsets
        return out

    def spread(self, values):
        v = np.asarray(values)
        return v.mean(axis=0), v.std(axis=0, ddof=1)


def window_at(n, lr=3e-3, w=5):
    rows = np.zeros((w, 3))
    rows[:, 0] = 0.5
    rows[:, 1] = math.log(lr)
    rows[:, 2] = 0.8
    return rows


def default_path(n, lr=3e-3):
    return np.geomspace(lr, lr / 10, K - 1 - n)


def test_best_lower_bound_is_chosen():
    # Score: the mean LR of the path (higher is better); no spread.
    model = FakeControlled(lambda lr: lr.mean(axis=1))
    n = 20
    p = plan(model, window_at(n), position=n, total_points=K, current_plan=default_path(n))
    assert isinstance(p, ControlPlan)
    assert p.switched
    best = int(np.argmax(p.bound))
    assert p.chosen == best
    assert p.chosen_name == "constant 2x"  # the highest-LR path of the library
    np.testing.assert_allclose(p.lr, np.full(K - 1 - n, 6e-3))
    assert p.table(1)[0]["name"] == "constant 2x"


def test_uncertain_candidate_better_in_mean_is_not_chosen():
    # Every constant is better in mean but very uncertain; the exp decays are sure and
    # slightly better than the default.
    def score(lr):
        return lr.mean(axis=1) * 10

    def spread_of(lr):
        flat = np.ptp(lr, axis=1) == 0
        return np.where(flat, 1.0, 0.0)

    model = FakeControlled(score, spread_of)
    n = 20
    p = plan(model, window_at(n), position=n, total_points=K, current_plan=default_path(n))
    by_mean = int(np.nanargmax(p.mean))
    assert p.names[by_mean].startswith("constant")
    assert not p.names[p.chosen].startswith("constant")
    assert p.switched
    assert p.bound[p.chosen] == pytest.approx(np.max(p.bound))
    # With kappa = 0 the uncertain constant wins.
    p0 = plan(
        model, window_at(n), position=n, total_points=K, current_plan=default_path(n), kappa=0.0
    )
    assert p0.names[p0.chosen].startswith("constant")


def test_no_candidate_beating_the_margin_keeps_the_default_exactly():
    default = default_path(20)

    def score(lr):
        # The default is the best path; others are at most 0.0005 worse or better.
        d = np.abs(np.log(lr) - np.log(default)[None, :]).mean(axis=1)
        return 0.9 - 0.0005 * np.tanh(d) + 0.0004 * (d > 0)

    model = FakeControlled(score)
    p = plan(model, window_at(20), position=20, total_points=K, current_plan=default, margin=0.001)
    assert not p.switched and p.chosen == 0
    np.testing.assert_array_equal(p.lr, default)
    assert "does not beat" in p.reason
    # The same library with no margin switches (some candidate is 0.0004 - 0.0005*tanh better).
    p2 = plan(model, window_at(20), position=20, total_points=K, current_plan=default, margin=0.0)
    assert p2.switched


def test_candidates_stay_in_range_and_trust_region():
    # Training runs: cosine decays (falls only) plus one switched run jumping x4 at 40%.
    runs = [synthetic_run("cosine", lr, points=K, points_per_epoch=10) for lr in (3e-3, 1e-2)]
    runs.append(
        synthetic_switched_run(
            "cosine", 3e-3, "constant", 1.2e-2, 20, points=K, points_per_epoch=10
        )
    )
    trust = TrustRegion.from_runs(runs)
    model = FakeControlled(lambda lr: lr.mean(axis=1), trust=trust)
    n = 20
    lr_now = float(runs[0].lr[n])
    w = window_at(n, lr=lr_now)
    p = plan(model, w, position=n, total_points=K, current_plan=runs[0].lr[n + 1 :])
    lo_jump, hi_jump = p.trust
    assert hi_jump > math.log(2.5)  # the switched run's rise is covered
    for name, path in zip(p.names[1:], p.paths[1:], strict=True):
        assert path.min() >= LR_RANGE[0] * (1 - 1e-9) and path.max() <= LR_RANGE[1] * (1 + 1e-9)
        jump = math.log(path[0] / lr_now)
        assert lo_jump - 1e-9 <= jump <= hi_jump + 1e-9, name
    # Late in the run no training run rose: every rising candidate is rejected.
    n2 = 40
    lr2 = float(runs[0].lr[n2])
    p2 = plan(
        model, window_at(n2, lr=lr2), position=n2, total_points=K, current_plan=runs[0].lr[n2 + 1 :]
    )
    assert p2.trust[1] == 0.0
    assert all(path[0] <= lr2 * (1 + 1e-9) for path in p2.paths[1:])
    assert any("jumps x2" in why for why in p2.rejected.values())
    # Without the trust region the rises come back.
    p3 = plan(
        model,
        window_at(n2, lr=lr2),
        position=n2,
        total_points=K,
        current_plan=runs[0].lr[n2 + 1 :],
        trust=False,
    )
    assert any(path[0] > lr2 * 1.5 for path in p3.paths[1:])


def test_no_reward_is_read_past_the_run_end():
    model = FakeControlled(lambda lr: lr.mean(axis=1))
    for n in (4, 20, 47, 48):
        plan(model, window_at(n), position=n, total_points=K, current_plan=default_path(n))
        _, t, log_lr = model.calls[-1]
        assert t[0] == n and t[-1] == K - 1
        assert log_lr.shape[1] == K - n


def test_run_longer_than_the_horizon_is_mapped_by_fraction():
    model = FakeControlled(lambda lr: lr.mean(axis=1))
    with pytest.warns(UserWarning, match="fraction of training"):
        plan(model, window_at(60), position=60, total_points=2 * K, current_plan=None)
    _, t, _ = model.calls[-1]
    assert t[0] == pytest.approx(30.0) and t[-1] == pytest.approx((2 * K - 1) / 2)


def test_library_counts_and_names():
    c = candidate_library(1e-3, 30, lr_range=(1e-6, 1e-1))
    # default + 3 starts x (constant + 6 shapes x 3 ends)
    assert len(c.names) == 1 + 3 * (1 + 6 * 3)
    assert c.lr.shape == (len(c.names), 30)
    assert len(set(c.names)) == len(c.names)
    i = c.names.index("cosine 1x->0.01x")
    assert c.lr[i, 0] == pytest.approx(1e-3) and c.lr[i, -1] == pytest.approx(1e-5)
    j = c.names.index("wsd50 2x->bottom")
    assert c.lr[j, 0] == pytest.approx(2e-3) and c.lr[j, -1] == pytest.approx(1e-6)
    np.testing.assert_allclose(c.lr[j, :15], 2e-3)
    np.testing.assert_allclose(c.lr[0], 1e-3)  # no default given: hold the current LR


def test_trust_region_json_round_trip_and_hostile_values():
    runs = [synthetic_run("onecycle", 1e-2, points=K, points_per_epoch=10)]
    t = TrustRegion.from_runs(runs)
    back = TrustRegion.from_json(t.to_json())
    assert back.allowed(1e-3, 0.1) == pytest.approx(t.allowed(1e-3, 0.1), abs=1e-6)
    # One-cycle rises during its warm-up (first 30%) and only falls after.
    assert t.allowed(float(runs[0].lr[5]), 0.1)[1] > 0
    assert t.allowed(float(runs[0].lr[40]), 0.85)[1] == 0.0
    bad = t.to_json()
    bad["up"] = bad["up"][:-1]
    with pytest.raises(ValueError, match="trust region"):
        TrustRegion.from_json(bad)


def test_hostile_trust_region_in_a_model_file_is_refused(tmp_path):
    model = random_controlled(0, members=2, horizon=K, window=5)
    cfg = model.config
    cfg["planner"]["trust"] = {"fraction_edges": [0, 1], "ln_lr_edges": [0], "down": [], "up": []}
    from keras_lode.model.validation import validate

    weights = {f"member{i}.{k}": v[i] for k, v in model.weights.items() for i in range(2)}
    with pytest.raises(ValueError, match="planner.trust"):
        validate(cfg, weights)


def test_real_controlled_model_plans_through_the_public_api():
    model = random_controlled(3, members=3, horizon=K, window=5, lr_range=(1e-5, 5e-2))
    run = synthetic_run("cosine", 1e-2, points=K, points_per_epoch=10)
    n = 25
    p = keras_lode.plan(
        model,
        run.channels()[n - 9 : n + 1],
        position=n,
        total_points=K,
        current_plan=run.lr[n + 1 :],
    )
    C = len(p.names)
    assert p.predictions.shape == (3, C, K - n, 2)
    assert p.paths.shape == (C, K - 1 - n) and p.lr.shape == (K - 1 - n,)
    assert np.all(np.isfinite(p.mean)) and np.all(p.sd >= 0)
    np.testing.assert_allclose(p.bound, p.mean - 1.0 * p.sd)
    np.testing.assert_allclose(p.lr, p.paths[p.chosen])
    assert "candidates" in p.summary()


def test_options_are_checked_per_kind():
    model = FakeControlled(lambda lr: lr.mean(axis=1))
    with pytest.raises(TypeError, match="controlled planner"):
        plan(model, window_at(20), position=20, total_points=K, samples=3)
    assert "kappa" in planner_options("controlled") and "samples" not in planner_options(
        "controlled"
    )
    assert "samples" in planner_options("generative")
    with pytest.raises(ValueError, match="kappa"):
        plan_control(model, window_at(20), position=20, total_points=K, kappa=-1)
    with pytest.raises(ValueError, match="reads 5"):
        plan_control(model, window_at(20, w=3), position=20, total_points=K)
    with pytest.raises(ValueError, match="shape"):
        candidate_library(1e-3, 5, lr_range=(1e-5, 1e-1), default=np.ones(4) * 1e-3)


def test_options_as_a_config_or_as_keywords_give_the_same_plan():
    from keras_lode.planning import ControlOptions

    model = FakeControlled(lambda lr: lr.mean(axis=1))
    args = {"position": 20, "total_points": K}
    by_kw = plan_control(model, window_at(20), kappa=0.5, margin=0.0, **args)
    by_config = plan_control(
        model, window_at(20), config=ControlOptions(kappa=0.5, margin=0.0), **args
    )
    assert by_config.names == by_kw.names and by_config.chosen == by_kw.chosen
    np.testing.assert_array_equal(by_config.lr, by_kw.lr)
    np.testing.assert_array_equal(by_config.bound, by_kw.bound)
    assert planner_options("controlled") == tuple(
        f.name for f in dataclasses.fields(ControlOptions)
    )
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['samples'\] for plan_control"):
        plan_control(model, window_at(20), samples=3, **args)


def test_non_finite_predictions_are_never_chosen():
    def score(lr):
        s = lr.mean(axis=1)
        s[np.argmax(s)] = np.nan  # the most tempting candidate is broken
        return s

    model = FakeControlled(score)
    p = plan(model, window_at(20), position=20, total_points=K, current_plan=default_path(20))
    assert np.isfinite(p.bound[p.chosen])
    assert p.switched
    # A broken default: stay on it and say so.
    model2 = FakeControlled(lambda lr: np.where(np.arange(lr.shape[0]) == 0, np.nan, 1.0))
    p2 = plan(model2, window_at(20), position=20, total_points=K, current_plan=default_path(20))
    assert p2.fallback and p2.chosen == 0 and "not finite" in p2.reason


def test_schedule_lr_helper_is_consistent_with_library_default():
    # The default continuation passed in is kept exactly (clipped to the range only).
    lr = schedule_lr("onecycle", 1e-2, K)
    c = candidate_library(float(lr[10]), K - 11, lr_range=(1e-6, 1.0), default=lr[11:])
    np.testing.assert_array_equal(c.lr[0], lr[11:])


def test_a_previous_control_plan_is_a_valid_current_plan():
    model = FakeControlled(lambda lr: lr.mean(axis=1))
    p1 = plan(model, window_at(20), position=20, total_points=K, current_plan=default_path(20))
    p2 = plan(model, window_at(25), position=25, total_points=K, current_plan=p1)
    np.testing.assert_allclose(p2.paths[0], p1.lr[5:])  # the default: p1's continuation
