"""Synthetic LLM-pretraining landscapes built from published laws, for tests, examples, benchmarks.

The loss of a run with ``n_params`` = N (non-embedding parameters), ``tokens`` = D, peak ``lr``,
``batch_size`` = B (tokens per optimizer step) and AdamW ``weight_decay`` = wd is

    L = L*(N, D) * (1 + c_lr log^2(lr / lr*) + c_bs log^2(B / B*) + c_wd log^2(tau / tau*)) * s

with

* ``L*(N, D) = E + A / N^alpha + B0 / D^beta``, the Chinchilla form (Hoffmann et al. 2022,
  arXiv 2203.15556; default constants from the Epoch AI replication, Besiroglu et al. 2024,
  arXiv 2404.10102, rounded to Hoffmann's E = 1.69, A = 406.4, alpha = 0.34, B = 410.7, beta = 0.28);
* ``lr* = lr_coef N^lr_n D^lr_d`` and ``B* = bs_coef D^bs_d`` (Step Law, Li et al. 2025,
  arXiv 2503.04715: lr* = 1.79 N^-0.713 D^0.307, B* = 0.58 D^0.571 tokens);
* ``tau = B / (lr wd D)``, the AdamW weight-decay timescale as a fraction of training, whose
  optimum ``tau*`` is roughly constant across scales (Wang & Aitchison 2024, arXiv 2405.13698), so
  wd* = B* / (lr* tau* D) moves with scale as a product of the laws above;
* ``s`` a schedule factor (``wsd`` slightly better than ``cosine``, Hägele et al. 2024);
* divergence: a run with ``lr > div_factor * lr*`` fails (returns no loss);
* seed noise: the loss is multiplied by ``exp(noise * eps)``, eps ~ N(0, 1);
* cost = 6 N D FLOPs (Kaplan et al. 2020).

Every constant is a knob, so tests can plant exponents the tuner was not built around, and
:meth:`LLMLandscape.random` draws landscapes with other constants and exponents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..space import ChoiceParam, LogParam, SearchSpace

__all__ = ["LLMLandscape", "front_gap"]


@dataclass(frozen=True)
class LLMLandscape:
    """A noisy, failing, cost-aware LLM-pretraining landscape (see the module docstring)."""

    E: float = 1.69
    A: float = 406.4
    alpha: float = 0.34
    B0: float = 410.7
    beta: float = 0.28
    lr_coef: float = 1.79
    lr_n: float = -0.713
    lr_d: float = 0.307
    bs_coef: float = 0.58
    bs_d: float = 0.571
    tau_opt: float = 0.2
    c_lr: float = 0.012
    c_bs: float = 0.006
    c_wd: float = 0.004
    div_factor: float = 6.0
    noise: float = 0.002
    schedule_factor: Mapping[str, float] = field(default_factory=lambda: {"cosine": 1.0, "wsd": 0.997})
    n_params_range: tuple[float, float] = (1e6, 3e7)
    tokens_range: tuple[float, float] = (1e7, 3e9)

    @classmethod
    def random(cls, seed: int) -> "LLMLandscape":
        """A landscape with other constants and exponents (for checks on unseen landscapes)."""
        r = np.random.default_rng(seed)
        u = lambda lo, hi: float(r.uniform(lo, hi))  # noqa: E731
        return cls(
            E=u(1.5, 2.0), A=u(200, 800), alpha=u(0.25, 0.4), B0=u(200, 2000), beta=u(0.25, 0.38),
            lr_coef=u(0.5, 5.0), lr_n=u(-0.9, -0.4), lr_d=u(0.1, 0.4),
            bs_coef=u(0.2, 2.0), bs_d=u(0.4, 0.7), tau_opt=u(0.05, 0.5),
            c_lr=u(0.008, 0.02), c_bs=u(0.003, 0.01), c_wd=u(0.002, 0.008),
        )

    # --- the laws --------------------------------------------------------------------------
    def optimal_loss(self, n_params: Any, tokens: Any) -> Any:
        """L*(N, D): the loss with the best lr, batch size, weight decay and schedule."""
        N, D = np.asarray(n_params, dtype=float), np.asarray(tokens, dtype=float)
        best_schedule = min(self.schedule_factor.values())
        return (self.E + self.A / N**self.alpha + self.B0 / D**self.beta) * best_schedule

    def optimal_config(self, n_params: float, tokens: float) -> dict[str, Any]:
        """The true best config at a size (what a proposal is scored against)."""
        lr = self.lr_coef * n_params**self.lr_n * tokens**self.lr_d
        bs = self.bs_coef * tokens**self.bs_d
        wd = bs / (lr * self.tau_opt * tokens)
        schedule = min(self.schedule_factor, key=self.schedule_factor.get)
        return {"n_params": n_params, "tokens": tokens, "lr": lr, "batch_size": bs,
                "weight_decay": wd, "schedule": schedule}

    def loss(self, config: Mapping[str, Any], *, rng: np.random.Generator | None = None) -> float | None:
        """The loss of a config (None if it diverges); noiseless when ``rng`` is None."""
        N, D = float(config["n_params"]), float(config["tokens"])
        lr, B, wd = float(config["lr"]), float(config["batch_size"]), float(config["weight_decay"])
        opt = self.optimal_config(N, D)
        if lr > self.div_factor * opt["lr"]:
            return None
        tau = B / (lr * wd * D)
        penalty = (
            self.c_lr * math.log(lr / opt["lr"]) ** 2
            + self.c_bs * math.log(B / opt["batch_size"]) ** 2
            + self.c_wd * math.log(tau / self.tau_opt) ** 2
        )
        base = (self.E + self.A / N**self.alpha + self.B0 / D**self.beta)
        value = base * (1 + penalty) * self.schedule_factor[config.get("schedule", "cosine")]
        if rng is not None:
            value *= math.exp(self.noise * rng.standard_normal())
        return value

    def cost(self, config: Mapping[str, Any]) -> float:
        """FLOPs of the run: 6 N D."""
        return 6.0 * float(config["n_params"]) * float(config["tokens"])

    def evaluate(self, config: Mapping[str, Any], *, rng: np.random.Generator) -> tuple[float | None, float, bool]:
        """(loss, cost, failed) of one noisy run. A diverged run burns a fraction of its cost."""
        loss = self.loss(config, rng=rng)
        cost = self.cost(config)
        if loss is None:
            return None, cost * float(rng.uniform(0.05, 0.5)), True
        return loss, cost, False

    def space(self, *, n_params: tuple[float, float] | None = None,
              tokens: tuple[float, float] | None = None) -> SearchSpace:
        """The search space this landscape is tuned over (the scaling axes are bounded)."""
        n_lo, n_hi = n_params or self.n_params_range
        d_lo, d_hi = tokens or self.tokens_range
        return SearchSpace(
            [
                LogParam("n_params", min=n_lo, max=n_hi),
                LogParam("tokens", min=d_lo, max=d_hi),
                LogParam("lr", center=3e-3, scale=30.0),
                LogParam("batch_size", min=1e3, max=1e7, integer=True),
                LogParam("weight_decay", min=1e-4, max=10.0),
                ChoiceParam("schedule", list(self.schedule_factor)),
            ],
            scaling=["n_params", "tokens"],
        )

    def true_front(self, costs: Sequence[float], *, n_params: tuple[float, float] | None = None,
                   tokens: tuple[float, float] | None = None) -> np.ndarray:
        """The best achievable loss at cost <= c for each c, within the searched ranges."""
        n_lo, n_hi = n_params or self.n_params_range
        d_lo, d_hi = tokens or self.tokens_range
        N = np.geomspace(n_lo, n_hi, 400)[:, None]
        D = np.geomspace(d_lo, d_hi, 400)[None, :]
        L = self.optimal_loss(N, D)
        C = 6.0 * N * D
        return np.array([L[C <= c].min() if (C <= c).any() else np.nan for c in costs])

    def with_(self, **changes: Any) -> "LLMLandscape":
        return replace(self, **changes)


def front_gap(observations, landscape: LLMLandscape, *, n_points: int = 20,
              n_params: tuple[float, float] | None = None,
              tokens: tuple[float, float] | None = None) -> float:
    """Mean relative gap between a search's front and the true front, at log-spaced costs.

    The search's front at cost c is the best *noiseless* loss among its successful configs costing
    at most c (so seed noise cannot flatter a method). Cost points span the searched cost range.

    Args:
        observations: a DataFrame like ``Tuner.observations()`` (param columns and ``status``).
        landscape: the landscape the configs were run on.

    Returns:
        mean over cost points of ``(front(c) - true(c)) / true(c)``; 0 is perfect.
    """
    n_lo, n_hi = n_params or landscape.n_params_range
    d_lo, d_hi = tokens or landscape.tokens_range
    costs = np.geomspace(6 * n_lo * d_lo * 10, 6 * n_hi * d_hi, n_points)
    truth = landscape.true_front(costs, n_params=n_params, tokens=tokens)
    ok = observations[observations["status"] == "ok"]
    cfg_cost = np.array([landscape.cost(r) for r in ok.to_dict("records")])
    cfg_loss = np.array([landscape.loss(r) for r in ok.to_dict("records")], dtype=float)
    gaps = []
    for c, t in zip(costs, truth):
        sel = cfg_cost <= c
        worst = float(landscape.optimal_loss(n_lo, d_lo)) * 1.5  # an empty front scores as bad
        best = float(np.nanmin(cfg_loss[sel])) if sel.any() else worst
        gaps.append((best - t) / t)
    return float(np.mean(gaps))
