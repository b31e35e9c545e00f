"""Surrogate: GP fits, the log-cost trend, the failure model, pending points, warm starts."""

from __future__ import annotations

import torch

from carbs_like.surrogate import WARP_SPREAD_MULTIPLES, LossWarp, ObservedData, fit_surrogate


def _data(n: int = 40, *, seed: int = 0, fail_above: float | None = None) -> ObservedData:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=torch.float64)
    loss = 3.0 - 1.0 * X[:, 0] + 2.0 * (X[:, 1] - 0.4) ** 2 + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
    cost = torch.exp(2.0 + 5.0 * X[:, 0] + 1.0 * X[:, 2])
    failed = X[:, 1] > fail_above if fail_above is not None else torch.zeros(n, dtype=torch.bool)
    loss = torch.where(failed, torch.full_like(loss, float("nan")), loss)
    return ObservedData(X=X, loss=loss, cost=cost, failed=failed)


def test_loss_gp_predicts_held_out_points_and_orders_them():
    data = _data(60)
    s = fit_surrogate(data, scaling_columns=[0], seed=0)
    test = _data(20, seed=1)
    mean, std = s.loss(test.X)
    pred = s.warp.inverse(mean)
    assert (pred - test.loss).abs().mean() < 0.05
    assert (std > 0).all()


def test_log_cost_gp_extrapolates_a_log_linear_cost_beyond_the_data():
    data = _data(40)
    s = fit_surrogate(data, scaling_columns=[0], seed=0)
    X = torch.tensor([[1.5, 0.5, 0.5], [2.0, 0.5, 1.5]], dtype=torch.float64)  # beyond [0, 1]
    truth = 2.0 + 5.0 * X[:, 0] + 1.0 * X[:, 2]
    assert torch.allclose(s.log_cost(X), truth, atol=0.3)


def test_failure_model_is_low_near_failures_and_high_far_from_them():
    data = _data(60, fail_above=0.7)
    assert data.failed.any()
    s = fit_surrogate(data, scaling_columns=[0], seed=0)
    p = s.p_success(torch.tensor([[0.5, 0.95, 0.5], [0.5, 0.2, 0.5]], dtype=torch.float64))
    assert p[0] < 0.5 < p[1]


def test_pending_points_collapse_uncertainty_there():
    data = _data(30)
    s = fit_surrogate(data, scaling_columns=[0], seed=0)
    x = torch.tensor([[0.9, 0.9, 0.1]], dtype=torch.float64)
    _, before = s.loss(x)
    _, after = s.with_pending(x).loss(x)
    assert after < 0.7 * before  # down to about the noise level of one observation


def test_reusing_hyperparameters_without_refit_keeps_them_exactly():
    data = _data(30)
    s = fit_surrogate(data, scaling_columns=[0], seed=0)
    more = _data(35)
    again = fit_surrogate(more, scaling_columns=[0], hyperparameters=s.hyperparameters, refit=False)
    assert again.hyperparameters == s.hyperparameters


def test_fitting_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_surrogate(_data(30), scaling_columns=[0], seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_loss_warp_is_monotone_and_invertible():
    y = torch.tensor([2.0, 2.5, 3.0, 7.0, 9.0], dtype=torch.float64)
    w = LossWarp.fit(y)
    z = w(y)
    assert (z[1:] > z[:-1]).all()
    assert torch.allclose(w.inverse(z), y)


def test_exact_predictor_matches_botorchs_posterior():
    import gpytorch

    for n in (30, 900):  # 900: past GPyTorch's default Cholesky size, where it would iterate
        data = _data(n, seed=2)
        s = fit_surrogate(data, scaling_columns=[0], seed=0, max_fit_points=64)
        C = torch.rand(50, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        mean, std = s.loss(C)
        with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000):
            post = s.loss_model.posterior(C)
        assert torch.allclose(mean, post.mean.squeeze(-1), atol=1e-6)
        assert torch.allclose(std, post.variance.squeeze(-1).sqrt(), atol=1e-5)


def _blowing_up(n: int = 40, *, seed: int = 3) -> ObservedData:
    """A shallow bowl plus a wall where the loss explodes (like lr past divergence)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=torch.float64)
    loss = 3.0 + 0.3 * (X[:, 1] - 0.3) ** 2 + torch.exp(12 * (X[:, 1] - 0.75))
    return ObservedData(X=X, loss=loss, cost=torch.exp(2.0 + 5.0 * X[:, 0]),
                        failed=torch.zeros(n, dtype=torch.bool))


def test_the_loss_warp_is_chosen_by_likelihood_nearly_linear_when_smooth_strong_when_long_tailed():
    smooth = fit_surrogate(_data(40), scaling_columns=[0], seed=0)
    tailed = fit_surrogate(_blowing_up(), scaling_columns=[0], seed=0)
    weak, strong = max(WARP_SPREAD_MULTIPLES), min(WARP_SPREAD_MULTIPLES)
    assert smooth.hyperparameters["loss_warp"] == {"spread_multiple": [weak]}
    assert tailed.hyperparameters["loss_warp"] == {"spread_multiple": [strong]}
    # the warp the surrogate uses is the chosen one
    y = _blowing_up().loss
    assert tailed.warp == LossWarp.fit(y, strong)


def test_without_refit_the_stored_warp_is_kept_not_chosen_again():
    tailed = fit_surrogate(_blowing_up(), scaling_columns=[0], seed=0)
    stored = dict(tailed.hyperparameters, loss_warp={"spread_multiple": [max(WARP_SPREAD_MULTIPLES)]})
    again = fit_surrogate(_blowing_up(), scaling_columns=[0], hyperparameters=stored, refit=False)
    assert again.hyperparameters["loss_warp"] == stored["loss_warp"]
    assert again.warp == LossWarp.fit(_blowing_up().loss, max(WARP_SPREAD_MULTIPLES))
