"""Planner rules (docs/design.md), each checked with hand-made models whose futures are known.

The stand-in model below returns, for latent row `r`, a trajectory chosen by the test, so
every rule can be probed by a future that only a correct planner treats right.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

from keras_lode.planning import DEFAULTS, Plan, derive_seed, plan

LOG_LR = math.log(1e-2)


class HandModel:
    """A duck-typed LatentODE whose decoded futures the test controls.

    Args:
        futures: callable `(t, Z) -> (S, T, 3)` raw trajectories `[loss, ln lr, metric]`.
        z0: latent returned by `encode`.
    """

    def __init__(
        self,
        futures,
        z0=None,
        horizon=100,
        points_per_epoch=10,
        lr_range=(1e-5, 1.0),
        planner_defaults=None,
    ):
        self.futures = futures
        self.z0 = np.array([1.0, -2.0, 0.0, 0.5]) if z0 is None else np.asarray(z0, float)
        self.horizon = horizon
        self.points_per_epoch = points_per_epoch
        self.lr_range = lr_range
        self.planner_defaults = planner_defaults or {}
        self.config = {}
        self.encoded = None
        self.decoded = None

    def encode(self, t, y):
        self.encoded = (np.array(t), np.array(y))
        return self.z0.copy()

    def decode(self, t, z):
        t, z = np.asarray(t, float), np.asarray(z, float)
        self.decoded = (t.copy(), z.copy())
        return np.asarray(self.futures(t, z), float)


def by_row(spec):
    """Futures from `spec(r, t) -> (loss, log_lr, metric)` per latent row `r`."""

    def futures(t, z):
        out = np.empty((z.shape[0], t.size, 3))
        for r in range(z.shape[0]):
            for c, v in enumerate(spec(r, t)):
                out[r, :, c] = v
        return out

    return futures


def window(W=5, losses=(0.49, 0.50, 0.51), lr=1e-2, metric=0.5):
    """A (W, 3) window ending in `losses`: band centre 0.5, std 0.008165."""
    loss = np.full(W, 0.6)
    loss[-len(losses) :] = losses
    return np.column_stack([loss, np.full(W, math.log(lr)), np.full(W, metric)])


HALF = 2 * np.std([0.49, 0.50, 0.51])  # tol 2 x std of the last 3 losses = 0.01633


def const(r, t, loss=0.5, lr=1e-2, metric=0.5):
    return np.full(t.size, loss), np.full(t.size, math.log(lr)), np.full(t.size, metric)


# ------------------------------------------------------------------ samples and decode


def test_latents_are_z0_plus_relative_noise_and_z0_itself():
    m = HandModel(by_row(const))
    plan(m, window(), position=10, total_points=100, seed=3, samples=30, sigma=0.15)
    z = m.decoded[1]
    assert z.shape == (31, 4)
    np.testing.assert_array_equal(z[0], m.z0)  # the unperturbed latent is a sample
    # A zero coordinate of z0 gets no noise: the noise is relative (sigma * |z0| * eps).
    np.testing.assert_array_equal(z[:, 2], 0.0)
    assert np.all(z[1:, [0, 1, 3]] != m.z0[[0, 1, 3]])
    dev = (z[1:] - m.z0)[:, [0, 1, 3]] / (0.15 * np.abs(m.z0[[0, 1, 3]]))
    assert 0.6 < dev.std() < 1.4  # standard-normal eps, 90 draws

    # Same seed, doubled sigma -> exactly doubled deviations.
    m2 = HandModel(by_row(const))
    plan(m2, window(), position=10, total_points=100, seed=3, samples=30, sigma=0.30)
    np.testing.assert_allclose(m2.decoded[1] - m.z0, 2 * (z - m.z0), rtol=1e-12)

    m3 = HandModel(by_row(const))
    plan(m3, window(), position=10, total_points=100, seed=3, sigma=0.0)
    np.testing.assert_array_equal(m3.decoded[1], np.tile(m.z0, (31, 1)))


@pytest.mark.parametrize("only", [0, 1, 15, 29, 30])
def test_every_sample_is_evaluated_including_the_last(only):
    # Only row `only` has a future inside the loss band; the reference never looked at the last.
    def spec(r, t):
        return const(r, t, loss=0.5 if r == only else 0.9)

    p = plan(HandModel(by_row(spec)), window(), position=10, total_points=100, seed=0)
    assert p.accepted == 1
    assert p.chosen.tolist() == [only]
    assert not p.fallback
    assert p.anchors[only] >= 0 and np.all(np.delete(p.anchors, only) == -1)


def test_decodes_from_time_zero_only_the_points_needed():
    m = HandModel(by_row(const))
    K, n = 100, 30
    plan(m, window(), position=n, total_points=K, seed=0)
    t = m.decoded[0]
    np.testing.assert_array_equal(t, np.arange(2 * K - n))  # within [0, 2K), step 1
    # The encoder sees the window at its own log-point indices.
    np.testing.assert_array_equal(m.encoded[0], np.arange(n - 4, n + 1))
    np.testing.assert_array_equal(m.encoded[1], window())


def test_samples_option_and_model_defaults_precedence():
    m = HandModel(by_row(const), planner_defaults={"samples": 5, "top_k": 1})
    p = plan(m, window(), position=10, total_points=100, seed=0)
    assert m.decoded[1].shape[0] == 6 and len(p.chosen) == 1
    p = plan(m, window(), position=10, total_points=100, seed=0, samples=7, top_k=2)
    assert m.decoded[1].shape[0] == 8 and len(p.chosen) == 2
    m = HandModel(by_row(const))
    p = plan(m, window(), position=10, total_points=100, seed=0)
    assert m.decoded[1].shape[0] == DEFAULTS["samples"] + 1 == 31
    assert len(p.chosen) == DEFAULTS["top_k"] and p.anchor_rule == "max_lr"


# ------------------------------------------------------------------ loss matching


@pytest.mark.parametrize(
    "loss, ok",
    [
        (0.5, True),
        (0.5 - 0.99 * HALF, True),
        (0.5 + 0.99 * HALF, True),
        (0.5 - 1.2 * HALF, False),  # below the band: a one-sided rule would accept it
        (0.1, False),
        (0.5 + 1.2 * HALF, False),
    ],
)
def test_loss_matching_is_two_sided(loss, ok):
    def spec(r, t):
        return const(r, t, loss=loss)

    p = plan(HandModel(by_row(spec)), window(), position=10, total_points=100, seed=0)
    assert p.accepted == (31 if ok else 0)
    assert p.fallback is (not ok)
    np.testing.assert_allclose(p.loss_band, (0.5 - HALF, 0.5 + HALF))


def test_band_width_is_tol_times_max_of_std_and_floor():
    def spec(r, t):
        return const(r, t, loss=0.48)  # 0.02 from the centre; std unit 0.008165

    m = HandModel(by_row(spec))
    assert plan(m, window(), position=10, total_points=100, seed=0, tol=2).accepted == 0
    assert plan(m, window(), position=10, total_points=100, seed=0, tol=2.5).accepted == 31
    # Flat losses: std 0, so the floor sets the unit.
    flat = window(losses=(0.5, 0.5, 0.5))
    assert plan(m, flat, position=10, total_points=100, seed=0, loss_floor=0.009).accepted == 0
    assert plan(m, flat, position=10, total_points=100, seed=0, loss_floor=0.011).accepted == 31
    # Only the last 3 losses count: an outlier earlier in the window changes nothing.
    w = window()
    w[0, 0] = 50.0
    assert plan(m, w, position=10, total_points=100, seed=0, tol=2.5).accepted == 31


def test_anchors_only_before_the_end_of_the_run():
    K = 100

    def spec(r, t):
        loss = np.where(t >= K, 0.5, 0.9)  # matches only at j >= K
        return loss, np.full(t.size, LOG_LR), np.full(t.size, 0.5)

    p = plan(HandModel(by_row(spec)), window(), position=10, total_points=K, seed=0)
    assert p.accepted == 0 and p.fallback


def test_nonfinite_futures_are_rejected():
    def spec(r, t):
        loss, lr, metric = const(r, t)
        if r == 3:
            metric = metric.copy()
            metric[-1] = np.nan  # one NaN anywhere disqualifies the sample
        if r == 4:
            lr = np.full(t.size, np.inf)
        return loss, lr, metric

    p = plan(HandModel(by_row(spec)), window(), position=10, total_points=100, seed=0)
    assert p.accepted == 29
    assert p.anchors[3] == -1 and p.anchors[4] == -1
    assert np.isnan(p.rewards[3]) and np.isnan(p.rewards[4])


# ------------------------------------------------------------------ anchors and rewards


def _anchor_future(t):
    # Loss in the band at j = 20 (exact), 40 (off by 0.01) and 60 (off by 0.015);
    # the predicted LR there is 1e-3, 5e-3 and 2e-3; metric = t / 1000.
    loss = np.full(t.size, 0.9)
    lr = np.full(t.size, 1e-4)
    for j, dl, v in ((20, 0.0, 1e-3), (40, 0.01, 5e-3), (60, -0.015, 2e-3)):
        loss[j] = 0.5 + dl
        lr[j] = v
    return loss, np.log(lr), t / 1000.0


def test_anchor_max_lr_is_the_default():
    p = plan(HandModel(by_row(lambda r, t: _anchor_future(t))), window(), position=10,
             total_points=100, seed=0)  # fmt: skip
    assert p.anchor_rule == "max_lr"
    assert np.all(p.anchors == 40)


def test_anchor_nearest():
    p = plan(HandModel(by_row(lambda r, t: _anchor_future(t))), window(), position=10,
             total_points=100, seed=0, anchor="nearest")  # fmt: skip
    assert np.all(p.anchors == 20)


def test_reward_is_metric_at_anchor_plus_remaining_points():
    K, n = 100, 10
    m = HandModel(by_row(lambda r, t: _anchor_future(t)))
    p = plan(m, window(), position=n, total_points=K, seed=0)
    np.testing.assert_allclose(p.rewards, (40 + K - n) / 1000.0)
    p = plan(m, window(), position=n, total_points=K, seed=0, anchor="nearest")
    np.testing.assert_allclose(p.rewards, (20 + K - n) / 1000.0)
    p = plan(m, window(), position=n, total_points=K, seed=0, reward_at=50)
    np.testing.assert_allclose(p.rewards, (40 + 50 - n) / 1000.0)


# ------------------------------------------------------------------ top-k average


def test_top_k_average_of_lr_paths():
    K, n = 100, 10

    # Row r: loss in band at j = r (so anchors differ), a time-varying LR path, and a
    # reward that grows with r except that rows 0-2 are rejected.
    def spec(r, t):
        loss = np.where(t == r, 0.5, 0.9) if r >= 3 else np.full(t.size, 0.9)
        log_lr = np.log(1e-3 * (1 + r) * (1 + t / 50.0))
        metric = np.full(t.size, r / 100.0)
        return loss, log_lr, metric

    m = HandModel(by_row(spec))
    p = plan(m, window(), position=n, total_points=K, seed=0, samples=9, top_k=3)
    assert p.accepted == 7
    assert p.chosen.tolist() == [9, 8, 7]  # best reward first
    expected = np.mean(
        [1e-3 * (1 + r) * (1 + np.arange(r + 1, r + K - n) / 50.0) for r in (9, 8, 7)], axis=0
    )
    np.testing.assert_allclose(p.lr, expected, rtol=1e-12)
    assert p.lr.shape == (K - n - 1,)
    np.testing.assert_array_equal(p.points, np.arange(n + 1, K))
    # Fewer accepted than top_k: all accepted are used.
    p = plan(m, window(), position=n, total_points=K, seed=0, samples=9, top_k=20)
    assert sorted(p.chosen.tolist()) == list(range(3, 10))


# ------------------------------------------------------------------ fallback and safety


def _rejecting_model(**kw):
    return HandModel(by_row(lambda r, t: const(r, t, loss=5.0)), **kw)


def test_fallback_keeps_the_current_plan():
    K, n = 100, 10
    current = np.geomspace(1e-2, 1e-4, K)  # a whole-run plan
    p = plan(_rejecting_model(), window(), position=n, total_points=K, current_plan=current)
    assert p.fallback and p.accepted == 0 and p.chosen.size == 0
    np.testing.assert_array_equal(p.lr, current[n + 1 :])
    assert "keeping the current plan" in p.summary()
    # The remaining-points form and a Plan object from an earlier point work the same.
    p2 = plan(_rejecting_model(), window(), position=n, total_points=K,
              current_plan=current[n + 1 :])  # fmt: skip
    np.testing.assert_array_equal(p2.lr, current[n + 1 :])
    p3 = plan(_rejecting_model(), window(W=8), position=n + 5, total_points=K, current_plan=p2)
    np.testing.assert_array_equal(p3.lr, current[n + 6 :])


def test_fallback_without_a_plan_holds_the_current_lr():
    p = plan(_rejecting_model(), window(lr=3e-3), position=10, total_points=100)
    assert p.fallback
    np.testing.assert_allclose(p.lr, np.full(89, 3e-3))
    assert "holding the current LR" in p.summary()


def test_fallback_holding_a_huge_current_lr_is_clipped_not_a_crash():
    w = window()
    w[:, 1] = 1000.0  # exp overflows float64
    p = plan(_rejecting_model(lr_range=(1e-4, 1e-2)), w, position=10, total_points=100)
    assert p.fallback
    np.testing.assert_array_equal(p.lr, 1e-2)


def test_integer_latent_still_gets_noise():
    m = HandModel(by_row(const), z0=[1, 2, 3])
    m.encode = lambda t, y: np.array([1, 2, 3])
    plan(m, window(), position=10, total_points=100, seed=0)
    assert m.decoded[1].dtype == np.float64
    assert np.all(m.decoded[1][1:] != [1, 2, 3])


def test_lr_is_clipped_to_the_range():
    def spec(r, t):
        return const(r, t, lr=50.0 if r % 2 else 1e-9)

    m = HandModel(by_row(spec), lr_range=(1e-4, 0.1))
    p = plan(m, window(), position=10, total_points=100, seed=0, top_k=1)
    assert p.lr_range == (1e-4, 0.1)
    assert np.all((p.lr >= 1e-4) & (p.lr <= 0.1)) and np.ptp(p.lr) == 0
    assert p.lr[0] in (1e-4, 0.1)
    p = plan(m, window(), position=10, total_points=100, seed=0, lr_range=(1e-3, 2e-3))
    assert np.all((p.lr >= 1e-3) & (p.lr <= 2e-3))
    # planner_defaults["lr_range"] comes before the model's training range.
    m.planner_defaults = {"lr_range": [1e-6, 1e-5]}
    p = plan(m, window(), position=10, total_points=100, seed=0)
    assert p.lr_range == (1e-6, 1e-5) and np.all(p.lr <= 1e-5)
    # The fallback is clipped too.
    p = plan(_rejecting_model(lr_range=(1e-4, 1e-3)), window(lr=0.5), position=10,
             total_points=100)  # fmt: skip
    np.testing.assert_array_equal(p.lr, 1e-3)


def test_lr_never_nonfinite_or_nonpositive():
    # exp overflow of a finite log-LR (inf) and underflow (0) must not reach the plan.
    def spec(r, t):
        return const(r, t, lr=1.0)[0], np.full(t.size, 1e4 if r % 2 else -1e4), np.ones(t.size)

    m = HandModel(by_row(spec), lr_range=(1e-5, 1.0))
    for seed in range(3):
        p = plan(m, window(), position=10, total_points=100, seed=seed, top_k=1)
        assert np.all(np.isfinite(p.lr)) and np.all(p.lr > 0)
        assert p.lr[0] in (1e-5, 1.0)


def test_bad_current_plan_raises():
    with pytest.raises(ValueError, match="current_plan"):
        plan(_rejecting_model(), window(), position=10, total_points=100,
             current_plan=np.ones(7))  # fmt: skip
    with pytest.raises(ValueError, match="finite, positive"):
        plan(_rejecting_model(), window(), position=10, total_points=100,
             current_plan=np.full(100, np.nan))  # fmt: skip


# ------------------------------------------------------------------ time mapping


def test_run_with_other_length_is_mapped_by_fraction_with_a_warning():
    m = HandModel(by_row(lambda r, t: _anchor_future(t)), horizon=50)
    K, n = 100, 20
    with pytest.warns(UserWarning, match="fraction of training"):
        p = plan(m, window(), position=n, total_points=K, seed=0)
    assert p.time_scale == 0.5
    # Window and decode times are in model time: run point i -> i * 50 / 100.
    np.testing.assert_allclose(m.encoded[0], np.arange(n - 4, n + 1) * 0.5)
    np.testing.assert_allclose(m.decoded[0], np.arange(2 * K - n) * 0.5)
    # The plan still covers every remaining run point.
    assert p.lr.shape == (K - n - 1,)


def test_points_per_epoch_mismatch_warns():
    m = HandModel(by_row(const), horizon=100, points_per_epoch=10)
    with pytest.warns(UserWarning, match="5 per epoch"):
        plan(m, window(), position=10, total_points=100, seed=0, points_per_epoch=5)


def test_matching_run_does_not_warn():
    m = HandModel(by_row(const), horizon=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = plan(m, window(), position=10, total_points=100, seed=0, points_per_epoch=10)
    assert p.time_scale == 1.0


# ------------------------------------------------------------------ seeds


def _latent_dependent():
    # LR level set by z[0], reward by z[1]: which samples win depends on the noise.
    def futures(t, z):
        S = z.shape[0]
        out = np.empty((S, t.size, 3))
        out[:, :, 0] = 0.5
        out[:, :, 1] = np.log(1e-3) + 0.5 * z[:, :1]
        out[:, :, 2] = z[:, 1:2]
        return out

    return HandModel(futures)


def test_same_seed_same_plan_different_seed_different_plan():
    m = _latent_dependent()
    a = plan(m, window(), position=10, total_points=100, seed=7)
    b = plan(m, window(), position=10, total_points=100, seed=7)
    c = plan(m, window(), position=10, total_points=100, seed=8)
    np.testing.assert_array_equal(a.lr, b.lr)
    assert a.chosen.tolist() == b.chosen.tolist()
    assert not np.allclose(a.lr, c.lr)


def test_unseeded_calls_differ_and_record_a_reproducible_seed():
    m = _latent_dependent()
    a = plan(m, window(), position=10, total_points=100)
    b = plan(m, window(), position=10, total_points=100)
    assert a.seed != b.seed and not np.allclose(a.lr, b.lr)
    again = plan(m, window(), position=10, total_points=100, seed=a.seed)
    np.testing.assert_array_equal(again.lr, a.lr)


def test_derive_seed_is_reproducible_and_differs_per_call():
    assert derive_seed(0, 30) == derive_seed(0, 30)
    seeds = {derive_seed(0, n) for n in range(0, 600, 5)} | {derive_seed(1, 30)}
    assert len(seeds) == 121
    assert all(0 <= s < 2**63 for s in seeds)
    m = _latent_dependent()
    p1 = plan(m, window(), position=10, total_points=100, seed=derive_seed(0, 10))
    p2 = plan(m, window(), position=10, total_points=100, seed=derive_seed(0, 15))
    assert not np.allclose(p1.lr, p2.lr)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "w, match",
    [
        (np.ones((5, 2)), r"shape \(W, 3\).*\(5, 2\)"),
        (np.ones(5), r"shape \(W, 3\)"),
        (np.ones((0, 3)), "W >= 1"),
        (np.ones((12, 3)), "only position \\+ 1 = 11"),
    ],
)
def test_window_of_wrong_shape_raises(w, match):
    with pytest.raises(ValueError, match=match):
        plan(HandModel(by_row(const)), w, position=10, total_points=100, seed=0)


@pytest.mark.parametrize("col, name", [(0, "loss"), (1, "log_lr"), (2, "metric")])
def test_window_with_nan_raises_naming_the_channel(col, name):
    w = window()
    w[-2, col] = np.nan
    with pytest.raises(ValueError, match=f"non-finite {name} .*\\[3\\]"):
        plan(HandModel(by_row(const)), w, position=10, total_points=100, seed=0)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"anchor": "median"}, ValueError, "anchor"),
        ({"sigma": -0.1}, ValueError, "sigma"),
        ({"tol": 0}, ValueError, "tol"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"samples": 2.5}, TypeError, "samples"),
        ({"seed": -1}, ValueError, "seed"),
        ({"lr_range": (0.0, 1.0)}, ValueError, "lr_range"),
        ({"lr_range": (1.0, 0.1)}, ValueError, "lr_range"),
        ({"reward_at": 10}, ValueError, "reward_at"),
        ({"position": 99}, ValueError, "position"),
        ({"total_points": 1}, ValueError, "total_points"),
    ],
)
def test_bad_options_raise_naming_the_argument(kw, err, match):
    args = {"position": 10, "total_points": 100, "seed": 0} | kw
    with pytest.raises(err, match=match):
        plan(HandModel(by_row(const)), window(), **args)


def test_options_as_a_config_or_as_keywords_give_the_same_plan():
    from keras_lode.planning import GenerativeOptions, plan_generative

    m = HandModel(by_row(lambda r, t: _anchor_future(t)))
    args = {"position": 10, "total_points": 100, "seed": 3}
    by_kw = plan_generative(m, window(), samples=7, top_k=2, **args)
    by_config = plan_generative(m, window(), config=GenerativeOptions(samples=7, top_k=2), **args)
    mixed = plan_generative(m, window(), config=GenerativeOptions(samples=7), top_k=2, **args)
    for p in (by_config, mixed):
        np.testing.assert_array_equal(p.lr, by_kw.lr)
        np.testing.assert_array_equal(p.chosen, by_kw.chosen)
    with pytest.raises(TypeError, match=r"Unknown option\(s\) \['kappa'\] for plan_generative"):
        plan_generative(m, window(), kappa=1.0, **args)
    with pytest.raises(TypeError, match="`config` must be a GenerativeOptions"):
        plan_generative(m, window(), config={"samples": 7}, **args)


def test_model_output_of_wrong_shape_raises():
    m = HandModel(lambda t, z: np.zeros((z.shape[0], t.size)))
    with pytest.raises(ValueError, match="model.decode must return shape"):
        plan(m, window(), position=10, total_points=100, seed=0)
    m = HandModel(by_row(const), z0=[np.nan, 1.0])
    with pytest.raises(ValueError, match="non-finite latent"):
        plan(m, window(), position=10, total_points=100, seed=0)


# ------------------------------------------------------------------ the Plan object


def test_plan_diagnostics_and_summary():
    p = plan(HandModel(by_row(lambda r, t: _anchor_future(t))), window(), position=10,
             total_points=100, seed=5)  # fmt: skip
    assert isinstance(p, Plan)
    assert p.candidates.shape == (31, 190, 3)
    assert p.rewards.shape == p.anchors.shape == (31,)
    assert p.accepted_mask.sum() == p.accepted == 31
    assert set(p.timings) == {"encode", "decode", "selection"}
    line = p.summary()
    assert "\n" not in line and "31/31" in line and "point 10/100" in line and "seed 5" in line


def test_planner_imports_neither_keras_nor_torch():
    import subprocess

    code = (
        "import sys, keras_lode.planning; "
        "print(sorted(m for m in ('keras', 'torch', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_with_the_numpy_latent_ode():
    from keras_lode.model import random_model

    model = random_model(seed=0, horizon=60)
    w = np.column_stack(
        [np.linspace(2.0, 1.0, 30), np.full(30, math.log(1e-3)), np.linspace(0.1, 0.5, 30)]
    )
    p = plan(model, w, position=29, total_points=60, seed=1, loss_floor=10.0)
    assert p.lr.shape == (30,)
    assert np.all(np.isfinite(p.lr)) and np.all(p.lr > 0)
    lo, hi = p.lr_range
    assert np.all((p.lr >= lo) & (p.lr <= hi))
    q = plan(model, w, position=29, total_points=60, seed=1, loss_floor=10.0)
    np.testing.assert_array_equal(p.lr, q.lr)
