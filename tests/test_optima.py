"""Per-scale optima (scaling/optima.py) and the choice of estimator (scaling/select.py): planted
asymmetric valleys with diverged runs, power laws through optima, and the law on full grids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carbs_like import LogParam, SearchSpace
from carbs_like.scaling import ScalingLaw
from carbs_like.scaling.optima import GroupOptimum, fit_through_optima, local_optimum
from carbs_like.tuner import Tuner

LR_GRID = 2.0 ** (np.arange(-24, -4) / 2)  # sqrt(2) steps, as in the Step Law sweeps
BS_GRID = 2.0 ** np.arange(4, 12)


def planted_loss(lr: float, bs: float, lr_opt: float, bs_opt: float, base: float) -> float | None:
    """A lopsided valley: doubling lr costs ~4x as much as halving it; None (diverged) beyond 6x lr*."""
    d = math.log(lr / lr_opt)
    if d > math.log(6.0):
        return None
    q = (0.02 if d > 0 else 0.005) * d**2 + 0.004 * math.log(bs / bs_opt) ** 2
    return base * (1.0 + q)


def grid(lr_opt: float, bs_opt: float, *, base: float = 2.5, noise: float = 3e-4, seed: int = 0):
    rng = np.random.default_rng(seed)
    T, loss, T_failed = [], [], []
    for lr in LR_GRID:
        for bs in BS_GRID:
            value = planted_loss(lr, bs, lr_opt, bs_opt, base)
            if value is None:
                T_failed.append((math.log(lr), math.log(bs)))
            else:
                T.append((math.log(lr), math.log(bs)))
                loss.append(value * math.exp(noise * rng.standard_normal()))
    return np.array(T), np.array(loss), np.array(T_failed)


@pytest.mark.parametrize("lr_opt", [1.3e-3, 2.9e-3])
def test_local_optimum_finds_a_lopsided_valleys_optimum(lr_opt: float) -> None:
    T, loss, T_failed = grid(lr_opt, 300.0)
    opt = local_optimum(T, loss, T_failed)
    assert opt is not None
    assert abs(opt.t[0] - math.log(lr_opt)) < 0.2  # well inside one sqrt(2) grid step (0.35)
    assert abs(opt.t[1] - math.log(300.0)) < 0.3
    assert np.all(opt.se > 0)
    p = 2  # the curvature above the optimum in lr comes out steeper than below it
    assert opt.theta[1 + p] > opt.theta[1 + 2 * p]


def test_too_few_runs_give_no_local_optimum() -> None:
    T, loss, T_failed = grid(2e-3, 300.0)
    assert local_optimum(T[:10], loss[:10], T_failed) is None


def test_power_law_through_optima_recovers_the_slope_and_drops_an_axis_without_trend() -> None:
    rng = np.random.default_rng(3)
    optima = []
    for x1 in np.log([1e8, 2e8, 4e8, 8e8]):
        for x2 in np.log([5e9, 1e10, 2e10, 4e10]):
            t = np.array([4.0 - 0.7 * x1 + 0.05 * rng.standard_normal(), 1.0])
            optima.append(GroupOptimum(x=np.array([x1, x2]), t=t, se=np.array([0.05, 0.05]), n=60, best=2.5,
                                       theta=np.zeros(8)))
    rel = fit_through_optima(optima, 0)
    sd = math.sqrt(rel.covariance[1][1])
    assert abs(rel.slopes[0] + 0.7) < 3 * sd + 0.02
    assert rel.axes_used == (True, False) and rel.slopes[1] == 0.0
    assert 0.02 < rel.model_std < 0.12  # about the planted scatter of 0.05


def grid_tuner(scales, *, seed: int = 0) -> Tuner:
    space = SearchSpace([LogParam("n_params", min=5e7, max=5e9), LogParam("tokens", min=1e9, max=1e12),
                         LogParam("lr", min=1e-5, max=1.0), LogParam("batch_size", min=4, max=1e5, integer=True)],
                        scaling=["n_params", "tokens"])
    tuner = Tuner(space, seed=seed)
    for i, (N, D) in enumerate(scales):
        lr_opt, bs_opt = planted(N, D)
        base = 1.7 + 400 / N**0.34 + 400 / D**0.28
        rng = np.random.default_rng([seed, i])
        for lr in LR_GRID[::2]:
            for bs in BS_GRID:
                value = planted_loss(lr, bs, lr_opt, bs_opt, base)
                config = {"n_params": N, "tokens": D, "lr": float(lr), "batch_size": int(bs)}
                if value is None:
                    tuner.add(config, loss=None, cost=6 * N * D, failed=True)
                else:
                    tuner.add(config, loss=value * math.exp(3e-4 * rng.standard_normal()), cost=6 * N * D)
    return tuner


def planted(N: float, D: float) -> tuple[float, float]:
    return 3.0 * N**-0.6 * D**0.25, 0.2 * D**0.35


def test_law_on_full_grids_uses_the_optima_and_extrapolates() -> None:
    scales = [(N, D) for N in (1e8, 2e8, 4e8) for D in (4e9, 1e10, 2.5e10)]
    law = ScalingLaw.fit(grid_tuner(scales), n_bootstrap=4)
    assert {r.estimator for r in law.relations.values()} == {"optima"}
    assert law.relations["lr"].slopes[0] == pytest.approx(-0.6, abs=0.15)
    target = {"n_params": 8e8, "tokens": 5e10}  # 2x beyond both axes
    pred = law.predict(**target)
    lr_opt, _ = planted(target["n_params"], target["tokens"])
    assert abs(math.log(pred.config["lr"] / lr_opt)) < math.log(1.3)
    lo, hi = pred.intervals["lr"]
    assert lo <= lr_opt <= hi and hi / lo < 4.0  # covers the truth, and says something


def test_a_group_that_never_varies_a_param_gives_no_local_optimum() -> None:
    lrs = np.geomspace(2e-4, 1e-2, 40)  # an lr-only sweep, finer than any window
    T = np.stack([np.log(lrs), np.full(40, math.log(256.0))], axis=1)
    loss = np.array([planted_loss(lr, 256.0, 2e-3, 300.0, 2.5) for lr in lrs])
    assert local_optimum(T, loss, np.zeros((0, 2))) is None
    # ...and a law on such sweeps still fits (with the response surface).
    scales = [(N, D) for N in (1e8, 2e8, 4e8) for D in (4e9, 1e10, 2.5e10)]
    tuner = grid_tuner(scales)
    sub = Tuner(tuner.space, seed=0)
    for row in tuner.observations().itertuples():
        if row.batch_size == 256:
            config = {"n_params": row.n_params, "tokens": row.tokens, "lr": row.lr, "batch_size": 256}
            failed = row.status == "failed"
            sub.add(config, loss=None if failed else row.loss, cost=row.cost, failed=failed)
    law = ScalingLaw.fit(sub, n_bootstrap=0)
    assert {r.estimator for r in law.relations.values()} == {"surface"}
