"""Acquisition: Pareto masks, front lookup, EI, and suggest() with a mock surrogate (no GP fit)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from carbs_like import LogParam, SearchSpace
from carbs_like.acquisition import (
    Geometry,
    expected_improvement,
    front_loss_at,
    log_expected_improvement,
    pareto_mask,
    suggest,
)
from carbs_like.surrogate import ObservedData

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


@settings(max_examples=100, deadline=None)
@given(pairs, st.lists(st.floats(-1, 8), min_size=1, max_size=10))
def test_front_loss_at_is_the_best_loss_no_more_expensive(points, queries):
    loss = torch.tensor([p[0] for p in points], dtype=torch.float64)
    cost = torch.tensor([p[1] for p in points], dtype=torch.float64)
    q = torch.tensor(queries, dtype=torch.float64)
    got = front_loss_at(cost, loss, q, empty=99.0)
    for g, c in zip(got.tolist(), queries):
        cheaper = [l for l, k in points if k <= c]
        assert g == (min(cheaper) if cheaper else 99.0)


def test_log_ei_matches_closed_form_and_stays_finite_in_the_tails():
    normal = torch.distributions.Normal(0.0, 1.0)
    mean = torch.linspace(-3, 3, 61, dtype=torch.float64)
    std = torch.full_like(mean, 0.7)
    best = torch.zeros_like(mean)
    u = (best - mean) / std
    direct = std * (u * normal.cdf(u) + torch.exp(normal.log_prob(u)))
    assert torch.allclose(expected_improvement(mean, std, best), direct, rtol=1e-6)
    # Far tail: finite, and still decreasing as the mean gets worse.
    far = log_expected_improvement(torch.tensor([10.0, 20.0, 40.0], dtype=torch.float64),
                                   torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    assert torch.isfinite(far).all() and far[0] > far[1] > far[2]


class MockSurrogate:
    """Loss minimised at x = 0.3 on every axis; cost grows with the first axis; x[1] > 0.8 fails."""

    warp = None
    cost_model = object()
    loss_model = object()

    def loss(self, X):
        return ((X - 0.3) ** 2).sum(-1), torch.full((X.shape[0],), 0.05, dtype=X.dtype)

    def log_cost(self, X):
        return 10.0 * X[:, 0]

    def p_success(self, X):
        return torch.where(X[:, 1] > 0.8, 1e-6, 1.0).to(X)

    def with_pending(self, X_pending):
        return self


def _geometry(space: SearchSpace) -> Geometry:
    return Geometry(
        limits=space.limits,
        choice_blocks=[],
        round=space.round,
        keys=space.keys,
    )


def _data(space: SearchSpace, n: int = 12) -> ObservedData:
    X = space.sobol(n, seed=1)
    s = MockSurrogate()
    return ObservedData(X=X, loss=s.loss(X)[0], cost=torch.exp(s.log_cost(X)), failed=torch.zeros(n, dtype=torch.bool))


def _space() -> SearchSpace:
    return SearchSpace([LogParam(f"x{i}", min=1.0, max=10.0) for i in range(3)], scaling=["x0"])


def test_suggest_respects_cost_cap_failures_and_exclusions():
    space = _space()
    data = _data(space)
    gen = torch.Generator().manual_seed(0)
    cap = 4.0
    seen = set(space.keys(data.X))
    for _ in range(10):
        sug = suggest(MockSurrogate(), data, torch.empty(0, 3, dtype=torch.float64), geometry=_geometry(space),
                      exclude=seen, generator=gen, n_candidates=400, max_log_cost=cap)
        x = sug.x.unsqueeze(0)
        assert 10.0 * float(x[0, 0]) <= cap + 1e-9          # under the cost cap
        assert float(x[0, 1]) <= 0.8                        # not in the failing region
        key = space.keys(x)[0]
        assert key not in seen                              # never repeats an excluded config
        seen.add(key)


def test_suggest_finds_the_optimum_of_a_known_surface():
    space = _space()
    data = _data(space)
    gen = torch.Generator().manual_seed(1)
    sug = suggest(MockSurrogate(), data, torch.empty(0, 3, dtype=torch.float64), geometry=_geometry(space),
                  exclude=set(), generator=gen, n_candidates=2000)
    # Along the non-cost axes the mock's optimum is 0.3; the winner sits near it.
    assert torch.allclose(sug.x[1:], torch.full((2,), 0.3, dtype=torch.float64), atol=0.12)
    assert math.isfinite(sug.log_score)
