"""The continuation prior: shape features by value, the regression, and decisions with it.

A hand-made controlled model without any skill (every candidate predicted alike, up to a
deterministic jitter) meets branch groups whose runs gained from decaying continuations:
only a prior over the continuations' shape can find that, and the planner must use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_counterfactual import LR_NOW, LR_RANGE, K, Members, N, window

from keras_lode.model.prior import (
    FLOOR,
    SHAPE_FEATURES,
    continuation_features,
    fit_prior,
    prior_gain,
)
from keras_lode.planning import candidate_library, plan
from keras_lode.train.counterfactual import BranchGroup, fit_paired, paired_section


def test_features_by_value():
    # A run held at 1e-2 for the last fifth, then candidates: the default holds it, one
    # doubles it, one anneals to 1e-2 / e^2 linearly in ln LR, one drops to zero.
    lr0 = 1e-2
    history = np.log(np.full(7, lr0))
    L = 5
    paths = np.stack([
        np.full(L, lr0),
        np.full(L, 2 * lr0),
        lr0 * np.exp(-np.linspace(0.5, 2.0, L)),
        np.zeros(L),
    ])  # fmt: skip
    phi = continuation_features(history, paths, position=6, total_points=12)
    assert phi.shape == (4, len(SHAPE_FEATURES))
    assert np.all(phi[0] == 0)  # the default's own features are subtracted
    f = dict(zip(SHAPE_FEATURES, phi[1], strict=True))
    ln2 = math.log(2)
    assert f["next"] == pytest.approx(ln2) and f["mean"] == pytest.approx(ln2)
    assert f["end"] == pytest.approx(ln2) and f["mean_squared"] == pytest.approx(ln2**2)
    assert f["mean_x_decayed"] == 0  # never decayed
    assert f["mean_x_fraction"] == pytest.approx(ln2 * 7 / 12)
    g = dict(zip(SHAPE_FEATURES, phi[2], strict=True))
    assert g["next"] == pytest.approx(-0.5) and g["end"] == pytest.approx(-2.0)
    assert g["mean"] == pytest.approx(-1.25)
    zero = dict(zip(SHAPE_FEATURES, phi[3], strict=True))
    assert zero["next"] == zero["end"] == zero["mean"] == FLOOR  # floored, not -inf
    # A run that has already decayed (by ln 4 from the top of its last fifth: 6 of 30
    # points) reads it; one whose decay lies before its last fifth does not.
    decayed = np.log([lr0 * 4, lr0 * 4, lr0 * 2, lr0 * 2, lr0, lr0, lr0])
    phi_d = continuation_features(decayed, paths, position=6, total_points=30)
    assert dict(zip(SHAPE_FEATURES, phi_d[1], strict=True))["mean_x_decayed"] == pytest.approx(
        ln2 * -math.log(4)
    )
    phi_e = continuation_features(decayed, paths, position=6, total_points=12)
    assert dict(zip(SHAPE_FEATURES, phi_e[1], strict=True))["mean_x_decayed"] == 0
    with pytest.raises(ValueError, match="continuation_features"):
        continuation_features(history, paths[0], position=6, total_points=12)


def test_fit_prior_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    n = 400
    phi = rng.standard_normal((n, len(SHAPE_FEATURES)))
    w = np.linspace(-0.02, 0.03, len(SHAPE_FEATURES))
    g = 0.01 * rng.standard_normal(n)
    y = 0.7 * g + phi @ w + 1e-5 * rng.standard_normal(n)
    prior = fit_prior(g, phi, y, ridge=1e-6)
    assert prior["alpha"] == pytest.approx(0.7, abs=1e-2)
    np.testing.assert_allclose(prior["weights"], w, atol=1e-4)
    assert prior["features"] == list(SHAPE_FEATURES) and prior["candidates"] == n
    np.testing.assert_allclose(prior_gain(g, phi, prior), y, atol=1e-3)
    shape = fit_prior(g, phi, y, ridge=1e-6, with_model=False)
    assert shape["alpha"] == 0.0
    np.testing.assert_allclose(shape["weights"], w, atol=2e-3)
    with pytest.raises(ValueError, match="fit_prior"):
        fit_prior(g[:3], phi[:3], y[:3])


def blind_model():
    """A controlled model without any skill: every member predicts every continuation
    alike, up to a deterministic per-path jitter (the counterfactual tests' members, their
    effect and levels zero)."""
    return Members(effect=lambda lr: np.zeros(lr.shape[0]), levels=(0.0,) * 5, noise=0.002)


def groups(seeds=range(6)):
    """Groups at N from a constant LR: each continuation gained 0.01 per e-fold its mean LR
    lies below the current one (annealing pays), up to seed noise."""
    lib = candidate_library(LR_NOW, K - 1 - N, lr_range=LR_RANGE)
    keep = list(range(0, len(lib.names), 3))
    names, paths = [lib.names[i] for i in keep], lib.lr[keep]
    drop = -np.log(paths / LR_NOW).mean(axis=1)
    out = []
    for seed in seeds:
        noise = 0.002 * np.random.default_rng(seed).standard_normal(len(names))
        actual = 0.8 + 0.01 * np.clip(drop, -3, 3) + noise
        actual[0] = 0.8
        out.append(BranchGroup(seed, N, K, window(), names, paths, actual))
    return out


def test_a_prior_finds_what_a_blind_model_cannot_and_the_planner_uses_it():
    model = blind_model()
    blind = fit_paired(model, groups())
    assert blind["prior"] is None and blind["prior_choice"] is None
    assert blind["realized"]["rule"] < 0.2 * blind["realized"]["oracle"]
    result = fit_paired(model, groups(), prior=True)
    assert result["prior_choice"]["shape"] > result["realized"]["oracle"] * 0.7
    assert result["realized"]["rule"] > 0.7 * result["realized"]["oracle"] > 1.0
    assert result["prior"]["alpha"] == 0.0  # the shape alone realized more (the model is blind)
    section = paired_section(result)
    assert section["prior"] == result["prior"]
    current = np.full(K - 1 - N, LR_NOW)
    model.planner_defaults = {**model.planner_defaults, "paired": {**section, "trusted": True}}
    p = plan(model, window(), position=N, total_points=K, current_plan=current)
    assert p.rule == "paired" and p.switched
    assert np.log(p.lr / LR_NOW).mean() < -1  # an annealing continuation
    # Its decisions were all at N: further along training the prior does not extrapolate.
    assert result["prior"]["fractions"] == [(N + 1) / K] * 2
    late = plan(model, window(), position=N + 3, total_points=K,
                current_plan=np.full(K - 4 - N, LR_NOW))  # fmt: skip
    assert not late.switched and "outside" in late.reason and "prior" in late.reason
    near = plan(model, window(), position=N + 1, total_points=K,
                current_plan=np.full(K - 2 - N, LR_NOW))  # fmt: skip
    assert near.switched  # one point of slack
    # The gain the planner reports is the prior's, recomputed from the candidates' shapes.
    phi = continuation_features(window()[:, 1], p.paths, N, K)
    assert p.gain[p.chosen] == pytest.approx(float(phi[p.chosen] @ result["prior"]["weights"]))
    # Without the prior the same calibration keeps the default or picks by the jitter alone.
    no_prior = {k: v for k, v in section.items() if k != "prior"}
    model.planner_defaults = {**model.planner_defaults, "paired": {**no_prior, "trusted": True}}
    q = plan(model, window(), position=N, total_points=K, current_plan=current)
    assert not q.switched or abs(q.gain[q.chosen]) < 0.01


def test_a_model_file_refuses_a_malformed_prior():
    def config(prior):
        paired = {"sd_scale": 1.0, "sd_floor": 0.0, "kappa": 0.0, "margin": 0.0,
                  "trusted": True, "level": 0.85, "coverage": 0.9, "prior": prior}  # fmt: skip
        return paired

    from keras_lode.model.validation import Checker, _check_paired

    good = {"features": list(SHAPE_FEATURES), "alpha": 0.0, "weights": [0.0] * len(SHAPE_FEATURES)}
    _check_paired(config(good), Checker("m.npz"))
    for bad, key in (
        ({**good, "weights": [0.0] * 3}, "planner.paired.prior.weights"),
        ({**good, "features": ["next"]}, "planner.paired.prior.features"),
        ({**good, "alpha": "x"}, "planner.paired.prior.alpha"),
        ({"features": list(SHAPE_FEATURES), "alpha": 0.0}, "planner.paired.prior"),
        ({**good, "fractions": [0.6, 0.2]}, "planner.paired.prior.fractions"),
    ):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            _check_paired(config(bad), Checker("m.npz"))


def test_a_group_whose_shape_cannot_be_read_is_left_out_of_the_prior():
    from keras_lode.train.counterfactual import _cases

    [good] = groups(seeds=[0])
    rows = window()
    rows[-1, 1] = np.nan  # the current ln LR unknown: no continuation's shape is readable
    bad = BranchGroup(1, N, K, rows, good.names, good.paths, good.actual)
    cases = _cases(blind_model(), [good, bad])
    assert cases[0]["mean"].size == len(good.names) - 1 and cases[1]["mean"].size == 0
    assert np.isfinite(np.concatenate([c["phi"] for c in cases])).all()
