"""Acquisition: Pareto masks, and suggest() with BoTorch's acquisition on small fitted models."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from carbs_like import LogParam, SearchSpace, acquisition
from carbs_like.acquisition import Geometry, acquisition_function, pareto_mask, rerun_informative, suggest
from carbs_like.surrogate import ObservedData, fit_surrogate

pairs = st.lists(
    st.tuples(st.integers(0, 6).map(float), st.integers(0, 6).map(float)), min_size=1, max_size=25
)


@settings(max_examples=100, deadline=None)
@given(pairs)
def test_pareto_mask_matches_brute_force(points):
    loss = torch.tensor([p[0] for p in points], dtype=torch.float64)
    cost = torch.tensor([p[1] for p in points], dtype=torch.float64)
    mask = pareto_mask(loss, cost)
    for i, (li, ci) in enumerate(points):
        dominated = any(
            lj <= li and cj <= ci and (lj < li or cj < ci) for j, (lj, cj) in enumerate(points) if j != i
        )
        assert bool(mask[i]) == (not dominated)


def _space() -> SearchSpace:
    return SearchSpace([LogParam(f"x{i}", min=1.0, max=10.0) for i in range(3)], scaling=["x0"])


def _geometry(space: SearchSpace) -> Geometry:
    return Geometry(limits=space.limits, choice_blocks=[], round=space.round, keys=space.keys)


def _data(space: SearchSpace, n: int = 24, *, flat_cost: bool = False) -> ObservedData:
    """Loss minimised at u = 0.3 on the last two axes; cost grows tenfold along the first; runs
    with u[1] > 0.8 fail."""
    X = space.sobol(n, seed=1)
    loss = ((X[:, 1:] - 0.3) ** 2).sum(-1) + 0.2 * (1 - X[:, 0])
    failed = X[:, 1] > 0.8
    cost = torch.ones(n, dtype=torch.float64) if flat_cost else torch.exp(2.3 * X[:, 0])
    return ObservedData(X=X, loss=torch.where(failed, torch.nan, loss), cost=cost, failed=failed)


def test_suggest_respects_failures_exclusions_and_the_cost_cap():
    space = _space()
    data = _data(space)
    model = fit_surrogate(data, scaling_columns=space.scaling_columns)
    gen = torch.Generator().manual_seed(0)
    seen = set(space.keys(data.X))
    for cap in (None, 3.0):
        sug = suggest(model, data, torch.empty(0, 3, dtype=torch.float64), geometry=_geometry(space),
                      exclude=seen, generator=gen, n_candidates=300,
                      max_log_cost=math.log(cap) if cap else None)
        assert sug.kind == "log_ehvi"
        x = sug.x.unsqueeze(0)
        assert float(x[0, 1]) <= 0.8                         # not in the failing region
        if cap:
            assert sug.predicted_cost <= 1.2 * cap           # under the cost cap (its model)
        key = space.keys(x)[0]
        assert key not in seen                               # never repeats an excluded config
        seen.add(key)


def test_suggest_with_flat_cost_finds_the_optimum_of_a_known_surface():
    space = _space()
    data = _data(space, flat_cost=True)
    model = fit_surrogate(data, scaling_columns=space.scaling_columns)
    sug = suggest(model, data, torch.empty(0, 3, dtype=torch.float64), geometry=_geometry(space),
                  exclude=set(space.keys(data.X)), generator=torch.Generator().manual_seed(1), n_candidates=500)
    assert sug.kind == "log_ei"  # cost does not vary: only the loss is improved
    assert torch.allclose(sug.x[1:], torch.full((2,), 0.3, dtype=torch.float64), atol=0.15)
    assert math.isfinite(sug.log_score)


def test_pending_points_push_the_next_suggestion_away():
    space = _space()
    data = _data(space, flat_cost=True)
    model = fit_surrogate(data, scaling_columns=space.scaling_columns)
    kw = {"geometry": _geometry(space), "exclude": set(space.keys(data.X)), "n_candidates": 400}
    first = suggest(model, data, torch.empty(0, 3, dtype=torch.float64), generator=torch.Generator().manual_seed(2), **kw)
    second = suggest(model, data, first.x.unsqueeze(0), generator=torch.Generator().manual_seed(2), **kw)
    assert float((first.x - second.x).abs().max()) > 1e-3


def test_reruns_stop_once_repeats_show_the_objective_is_deterministic():
    space = _space()
    data = _data(space, flat_cost=True)
    twice = ObservedData(X=torch.cat([data.X, data.X[:3]]), loss=torch.cat([data.loss, data.loss[:3]]),
                         cost=torch.cat([data.cost, data.cost[:3]]), failed=torch.cat([data.failed, data.failed[:3]]))
    model = fit_surrogate(twice, scaling_columns=space.scaling_columns)
    assert not rerun_informative(model, twice, space.keys(twice.X))   # identical repeats
    jitter = 1.0 + 0.2 * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    noisy = ObservedData(X=twice.X, loss=torch.cat([data.loss, data.loss[:3] * jitter]), cost=twice.cost,
                         failed=twice.failed)
    model = fit_surrogate(noisy, scaling_columns=space.scaling_columns)
    assert rerun_informative(model, noisy, space.keys(noisy.X))       # repeats that disagree


def test_the_analytic_screening_matches_the_monte_carlo_hypervolume_improvement():
    """The raw samples' screening value (the log of the analytic improvement) agrees with BoTorch's
    Monte-Carlo log form on the same candidates, a pending point included, to its sampling error."""
    space = _space()
    data = _data(space)
    model = fit_surrogate(data, scaling_columns=space.scaling_columns)
    pending = space.sobol(1, seed=7)
    X = space.sobol(64, seed=3).unsqueeze(1)
    analytic, kind = acquisition_function(model, data, pending, generator=torch.Generator().manual_seed(0),
                                          analytic=True)
    assert kind == "log_ehvi"
    mc, _ = acquisition_function(model, data, pending, generator=torch.Generator().manual_seed(0))
    mc.base.sampler = type(mc.base.sampler)(sample_shape=torch.Size([4096]), seed=0)
    with torch.no_grad():
        a, m = analytic(X), mc(X)
    worth = m > m.max() - 5.0  # the candidates within e^5 of the best: those the choice is among
    assert int(worth.sum()) >= 8
    assert float((a[worth] - m[worth]).abs().max()) < 0.1
    assert int(torch.argmax(a)) == int(torch.argmax(m))


def test_an_underflowing_analytic_screen_hands_over_to_the_monte_carlo_one(monkeypatch):
    """Where (almost) no candidate has an analytic improvement above float64's floor, the raw
    samples are screened by the Monte-Carlo estimate instead: the analytic one is not used."""
    space = _space()
    data = _data(space)
    model = fit_surrogate(data, scaling_columns=space.scaling_columns)
    calls = []
    real = acquisition.acquisition_function

    def counting(*args, **kwargs):
        calls.append(bool(kwargs.get("analytic")))
        return real(*args, **kwargs)

    monkeypatch.setattr(acquisition, "acquisition_function", counting)
    kw = {"geometry": _geometry(space), "exclude": set(space.keys(data.X)), "n_candidates": 200}
    first = suggest(model, data, torch.empty(0, 3, dtype=torch.float64), generator=torch.Generator().manual_seed(0), **kw)
    assert calls == [False, True]
    monkeypatch.setattr(acquisition, "MIN_POSITIVE_SHARE", 1.01)  # as if every candidate had underflowed
    second = suggest(model, data, torch.empty(0, 3, dtype=torch.float64), generator=torch.Generator().manual_seed(0), **kw)
    assert second.kind == first.kind == "log_ehvi"
    assert second.log_score is not None and math.isfinite(second.log_score)
    assert float((first.x - second.x).abs().max()) < 0.2  # both screens lead to the same region
