"""Scaling laws: how the best hyperparameters and the loss move with scale.

:meth:`ScalingLaw.fit` learns, from a tuner's observations (asked or imported with ``add``):

* a **relation** for every numeric non-scaling param h: its best value as a power law of the
  scaling axes s_1..s_k, ``t(h*) = a + sum_k b_k log s_k``, where ``t`` is the param's transform
  (natural log for :class:`~carbs_like.space.LogParam`, identity for ``LinearParam``, logit for
  ``LogitParam``). This is the form the Step Law (Li et al. 2025, arXiv 2503.04715), DeepSeek LLM
  (arXiv 2401.02954) and muP literature report (e.g. lr* ~ N^-0.71 D^0.31), but every constant is
  learnt from the user's own runs; nothing published is built in.
* the **choice** of every :class:`~carbs_like.space.ChoiceParam` that is best at the largest
  observed scales;
* a **loss law** in the Chinchilla form ``L = E + sum_k A_k / s_k^alpha_k`` (Hoffmann et al. 2022,
  arXiv 2203.15556) of the best loss at each scale, and a **cost law**
  ``log cost = c + sum_k g_k log s_k`` (e.g. cost = 6 N D FLOPs has g = (1, 1)).

All of them are fitted jointly to the successful runs, as one response surface:

    log L = log(E + sum_k A_k / s_k^alpha_k) + gamma(choices, s) + log(1 + q),
    q = (t - t*(s))' H (t - t*(s)),    t*(s) = a + B log s,

where ``t`` are the transformed values of the numeric params, ``t*(s)`` their optimum at scale s
(the relations), ``H`` a positive-definite curvature (how fast the loss rises away from the
optimum, with the interactions between params, e.g. lr x weight decay), and ``gamma`` a loss
factor per choice that may drift with scale. This is a second-order (response-surface) model of
the loss around a moving optimum: every run informs it, and the near-optimal runs most (a second
pass weights runs by ``1 / sqrt(1 + q / 0.005)``, since a quadratic bowl is a local description:
the loss is not symmetric about its optimum, and on the demo's runs a bowl fitted with weights
``1 / sqrt(1 + q / 0.05)`` centred lr at half the value of the best runs at the largest size). It
is fitted by robust least squares (soft-L1 on the log loss, so a few outliers barely pull), with
weak priors that keep the optimum near the runs; uncertainties come from refits on bootstrap
resamples of the runs. Failed runs carry no loss and are left out.

Why not the argmins of the tuner's GP at each observed scale: that was the first design. With
~120 runs in 6 dimensions the GP mean's conditional optima scatter by ~0.8 nats in lr at a fixed
scale, and the relations fitted through them extrapolated 33x with ~3% loss regret on the
built-in landscape; the joint response surface uses every run directly: over 18 tuning runs on
6 landscapes (``benchmarks/scaling_law.py --seeds 3``) its 33x proposals have a median regret of
0.42% and a worst of 1.9%.

Example:
    >>> law = tuner.scaling_law()
    >>> law.propose(n_params=1e9, tokens=2e10)         # a full config, a plain dict
    >>> law.predict(n_params=1e9, tokens=2e10).intervals["lr"]
    >>> law.propose(cost=1e21)                         # compute-optimal size for that budget
    >>> law.table()                                    # the relations and their uncertainties
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .space import ChoiceParam, SearchSpace

if TYPE_CHECKING:
    import pandas as pd

    from .surrogate import ObservedData
    from .tuner import Tuner

__all__ = [
    "CostLaw",
    "Evidence",
    "LossLaw",
    "Prediction",
    "Relation",
    "ScalingLaw",
    "fit_cost_law",
    "fit_loss_law",
]

# ----------------------------------------------------------------------------- the nouns ----
@dataclass(frozen=True)
class Relation:
    """How the best value of one numeric param moves with scale.

    ``t(h*) = intercept + sum_k slopes[k] * log(s_k)``, with ``t`` the param's transform (see
    ``transform``) and ``s_k`` the value of scaling axis ``axes[k]`` in param space.

    Attributes:
        param: the param's name.
        axes: the scaling axes, in the order of ``slopes``.
        intercept: ``a``, in transformed units.
        slopes: ``b_k``, the exponents for a LogParam.
        covariance: `(k+1) x (k+1)` covariance of ``(intercept, *slopes)`` (bootstrap).
        transform: ``"log"``, ``"linear"`` or ``"logit"``.
        curvature: relative loss increase per squared transformed unit away from the optimum
            (for a LogParam: the loss grows by ~ ``curvature * ln(h / h*)^2``).
    """

    param: str
    axes: tuple[str, ...]
    intercept: float
    slopes: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    transform: str
    curvature: float

    @property
    def slope_std(self) -> tuple[float, ...]:
        cov = np.asarray(self.covariance)
        return tuple(float(math.sqrt(max(cov[i, i], 0.0))) for i in range(1, cov.shape[0]))

    def __call__(self, log_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of ``t(h*)`` at `m x k` log scales (natural log); two `m` arrays."""
        Z = _design(np.atleast_2d(log_scales))
        coef = np.array([self.intercept, *self.slopes])
        var = np.einsum("mi,ij,mj->m", Z, np.asarray(self.covariance), Z)
        return Z @ coef, np.sqrt(np.maximum(var, 0.0))


@dataclass(frozen=True)
class LossLaw:
    """The best loss against scale: ``L = E + sum_k A_k / s_k^alpha_k`` (Chinchilla form).

    Attributes:
        axes: the scaling axes.
        E: the irreducible loss.
        A: one coefficient per axis.
        alpha: one exponent per axis.
        samples: `b x (1 + 2k)` bootstrap refits ``(E, log A_1.., alpha_1..)`` for the band.
        n_points: points the law was fitted to.
    """

    axes: tuple[str, ...]
    E: float
    A: tuple[float, ...]
    alpha: tuple[float, ...]
    samples: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    n_points: int = 0

    def __call__(self, log_scales: np.ndarray) -> np.ndarray:
        """Predicted loss at `m x k` log scales (natural log); an `m` array."""
        theta = np.array([self.E, *np.log(self.A), *self.alpha])
        return _loss_law_value(theta, np.atleast_2d(log_scales))

    def band(self, log_scales: np.ndarray, *, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the ``level`` band at `m x k` log scales (bootstrap refits)."""
        x = np.atleast_2d(log_scales)
        mid = self(x)
        if len(self.samples) < 2:
            return mid, mid
        values = np.stack([_loss_law_value(np.asarray(s), x) for s in self.samples])
        q = (1 - level) / 2
        lo, hi = np.quantile(values, [q, 1 - q], axis=0)
        return np.minimum(lo, mid), np.maximum(hi, mid)


@dataclass(frozen=True)
class CostLaw:
    """``log cost = intercept + sum_k slopes[k] log s_k``, fitted to the successful observations.

    Attributes:
        axes: the scaling axes.
        intercept: ``c``.
        slopes: ``g_k`` (cost = 6 N D gives 1 for each).
        residual_std: RMS residual in log cost (what the other params add).
    """

    axes: tuple[str, ...]
    intercept: float
    slopes: tuple[float, ...]
    residual_std: float

    def __call__(self, log_scales: np.ndarray) -> np.ndarray:
        """Predicted log cost at `m x k` log scales; an `m` array."""
        return _design(np.atleast_2d(log_scales)) @ np.array([self.intercept, *self.slopes])


@dataclass(frozen=True)
class Evidence:
    """The runs behind the law, in the units of the relations (for plots and checks).

    Attributes:
        log_scales: `n x k` natural-log scales of the successful runs.
        values: `n x p` their transformed values of the relation params.
        excess: `n` the fitted relative loss excess ``q`` of each run over the best at its scale.
        loss: `n` their observed losses.
        params: the ``p`` relation params, in column order.
    """

    log_scales: np.ndarray
    values: np.ndarray
    excess: np.ndarray
    loss: np.ndarray
    params: tuple[str, ...]


@dataclass(frozen=True)
class Prediction:
    """A proposal with its uncertainty.

    Attributes:
        config: the full config (a plain dict, what ``propose`` returns).
        intervals: for each numeric non-scaling param, the ``level`` interval of its best value
            (param space, within the param's bounds).
        loss: the predicted best loss at this scale (loss law).
        loss_interval: its ``level`` band.
        cost: the predicted cost (cost law).
        level: the coverage of the intervals.
        notes: anything the user should know (a value clamped to a param's bounds, ...).
    """

    config: dict[str, Any]
    intervals: dict[str, tuple[float, float]]
    loss: float
    loss_interval: tuple[float, float]
    cost: float
    level: float
    notes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- the law ------
@dataclass(frozen=True)
class ScalingLaw:
    """Fitted relations, choices, loss law and cost law; proposes configs at any scale.

    Build it with ``tuner.scaling_law()`` (or :meth:`ScalingLaw.fit`).

    Attributes:
        space: the search space.
        relations: a :class:`Relation` per numeric non-scaling param.
        choices: the choice of each :class:`ChoiceParam` that is best at the largest scales.
        choice_scores: per ChoiceParam, each choice's loss factor at the largest observed scales,
            relative to its first choice (NaN for a choice never observed).
        loss_law: the best loss against scale.
        cost_law: the cost against scale.
        evidence: the runs behind the fit.
    """

    space: SearchSpace
    relations: Mapping[str, Relation]
    choices: Mapping[str, Any]
    choice_scores: Mapping[str, Mapping[Any, float]]
    loss_law: LossLaw
    cost_law: CostLaw
    evidence: Evidence = field(repr=False)

    # --- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        tuner: "Tuner",
        *,
        n_bootstrap: int = 32,
        seed: int | None = None,
    ) -> "ScalingLaw":
        """Fit the scaling law from a tuner's observations (see the module docstring).

        Args:
            tuner: the tuner; its runs may be asked or imported with ``add``. Failed runs are
                left out (they have no loss).
            n_bootstrap: refits on resampled runs behind the uncertainties (0: none).
            seed: seeds the bootstrap's own generator (default: the tuner's seed).

        Raises:
            ValueError: the space has no scaling axes, or there are too few successful
                observations or distinct scales to fit (the message says how many are needed).
        """
        space = tuner.space
        if not space.scaling:
            raise ValueError(
                "the search space names no scaling axes, so there is nothing to extrapolate along; "
                "pass scaling=[...] to SearchSpace (e.g. scaling=['n_params', 'tokens'])"
            )
        if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be a non-negative int, got {n_bootstrap!r}")
        seed = tuner.seed if seed is None else int(seed)
        return _fit(space, tuner._data(), n_bootstrap=n_bootstrap, seed=seed)

    # --- proposing ----------------------------------------------------------------------------
    def propose(self, scaling: Mapping[str, float] | None = None, /, *, cost: float | None = None,
                **values: float) -> dict[str, Any]:
        """A full config for a scale, or for a compute budget.

        Args:
            scaling: the scaling axes' values as a dict (or pass them as keywords).
            cost: instead of the scaling values, a budget (in the units of the observed costs):
                the scaling values are then chosen to minimise the predicted loss at that cost,
                with the split between the axes kept near the splits the runs tried (see
                :meth:`predict`'s notes).
            **values: the scaling axes' values, e.g. ``n_params=7e9, tokens=1.4e11``; they may lie
                far beyond the searched bounds.

        Returns:
            A plain dict with every param of the space. Non-scaling values stay within their
            params' bounds (see :meth:`predict` for the intervals and notes).
        """
        return self.predict(scaling, cost=cost, **values).config

    def predict(self, scaling: Mapping[str, float] | None = None, /, *, cost: float | None = None,
                level: float = 0.9, **values: float) -> Prediction:
        """Like :meth:`propose`, with an interval per param and the predicted loss and its band.

        Args:
            scaling, cost, values: as for :meth:`propose`.
            level: coverage of the intervals (default 0.9).
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        x, notes = self._log_scales(scaling, cost, values)
        config: dict[str, Any] = {}
        given = {**(scaling or {}), **values}
        for name, lx in zip(self.space.scaling, x):
            v = float(given[name]) if cost is None else math.exp(lx)  # the user's values exactly
            config[name] = int(round(v)) if getattr(self.space[name], "integer", False) else v
        z = NormalDist().inv_cdf(0.5 + level / 2)
        intervals: dict[str, tuple[float, float]] = {}
        for name, rel in self.relations.items():
            mean, std = rel(x[None, :])
            value, clamped = _to_param(self.space[name], float(mean[0]))
            lo, _ = _to_param(self.space[name], float(mean[0] - z * std[0]))
            hi, _ = _to_param(self.space[name], float(mean[0] + z * std[0]))
            config[name] = value
            intervals[name] = (lo, hi)
            if clamped:
                notes.append(f"{name}: the relation's value lies outside the param's bounds; clamped to {value!r}")
        config.update(self.choices)
        config = {n: config[n] for n in self.space.names}
        loss = float(self.loss_law(x)[0])
        lo, hi = self.loss_law.band(x, level=level)
        return Prediction(
            config=config, intervals=intervals, loss=loss, loss_interval=(float(lo[0]), float(hi[0])),
            cost=float(math.exp(self.cost_law(x)[0])), level=level, notes=tuple(notes),
        )

    def _log_scales(self, scaling: Mapping[str, float] | None, cost: float | None,
                    values: Mapping[str, float]) -> tuple[np.ndarray, list[str]]:
        """The target's natural-log scales, and notes on how a budget was split (if one was)."""
        given = {**(scaling or {}), **values}
        if cost is not None:
            if given:
                raise ValueError(
                    f"give either cost= or the scaling values {list(self.space.scaling)}, not both "
                    f"(got cost and {sorted(given)})"
                )
            x, note = self._compute_optimal(cost)
            return x, [note] if note else []
        unknown = sorted(set(given) - set(self.space.scaling))
        missing = [s for s in self.space.scaling if s not in given]
        if unknown:
            raise ValueError(
                f"{unknown} are not scaling axes; give values for {list(self.space.scaling)} "
                f"(the other params are proposed)"
            )
        if missing:
            raise ValueError(f"missing scaling value(s) {missing}: give all of {list(self.space.scaling)}, or cost=")
        out = []
        for s in self.space.scaling:
            v = given[s]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{s}={v!r}: a scaling value must be a positive finite number")
            out.append(math.log(float(v)))
        return np.array(out), []

    def _compute_optimal(self, cost: float) -> tuple[np.ndarray, str | None]:
        """Log scales minimising the loss law subject to the cost law meeting ``cost``, and a note
        when the split between axes had to be held at the edge of what the runs tried.

        With ``L = E + sum_k A_k exp(-alpha_k x_k)`` and ``log cost = c + sum_k g_k x_k`` the
        Lagrange condition ``alpha_k A_k exp(-alpha_k x_k) = lambda g_k`` gives each ``x_k`` in
        closed form, and the budget fixes ``log lambda`` (the problem is convex). Axes the cost
        does not grow with stay at their largest observed value.

        The split between two axes (e.g. tokens per parameter) may leave the range of splits the
        runs tried only as far as the budget leaves their costs: by at most a factor
        ``sqrt(cost / largest run's cost)`` beyond the range's ends (none for a budget within the
        runs' costs). Beyond the tried splits the law's terms are extrapolated in different
        directions, and a term the runs could not resolve (small, data-limited runs make any term
        in n_params look negligible) would otherwise send the whole budget to one axis: a tiny
        model on endless tokens. When the closed form leaves that range, the convex problem is
        solved with it as linear constraints, and the note says so.
        """
        if isinstance(cost, bool) or not isinstance(cost, numbers.Real) or not math.isfinite(cost) or cost <= 0:
            raise ValueError(f"cost={cost!r}: a budget must be a positive finite number")
        g = np.asarray(self.cost_law.slopes)
        driving = g > 0.05
        if not driving.any():
            raise ValueError(
                "the observed cost does not grow with any scaling axis, so a budget does not set a "
                "scale; pass the scaling values to propose() instead"
            )
        x = self.evidence.log_scales.max(axis=0).copy()
        budget = math.log(float(cost)) - self.cost_law.intercept - float(g[~driving] @ x[~driving])
        gf, alpha = g[driving], np.asarray(self.loss_law.alpha)[driving]
        logA = np.log(np.asarray(self.loss_law.A)[driving])
        c = np.log(alpha) + logA - np.log(gf)
        log_lambda = (float((gf * c / alpha).sum()) - budget) / float((gf / alpha).sum())
        xf = (c - log_lambda) / alpha
        # The observed range of every pairwise log-ratio of the driving axes.
        obs = self.evidence.log_scales[:, driving]
        pairs = list(itertools.combinations(range(obs.shape[1]), 2))
        diff = np.stack([obs[:, i] - obs[:, j] for i, j in pairs], axis=1) if pairs else np.zeros((len(obs), 0))
        beyond = 0.5 * max(0.0, math.log(float(cost)) - float(self.cost_law(self.evidence.log_scales).max()))
        d_lo, d_hi = diff.min(axis=0) - beyond, diff.max(axis=0) + beyond
        split = np.array([xf[i] - xf[j] for i, j in pairs])
        note = None
        if pairs and (np.any(split < d_lo - 1e-9) or np.any(split > d_hi + 1e-9)):
            xf = self._split_within(obs, gf, logA, alpha, budget, pairs, d_lo, d_hi)
            names = [n for n, d in zip(self.space.scaling, driving) if d]
            edges = [f"{names[i]}/{names[j]} = {math.exp(xf[i] - xf[j]):.3g}" for i, j in pairs]
            note = ("the loss law would split this budget far outside the ratios between the scaling axes "
                    f"that the runs tried; the split is held at {', '.join(edges)}, the runs' extreme ratio "
                    "extended by the square root of how far the budget exceeds their costs. Runs at other "
                    "ratios would show whether the law holds beyond it")
        x[driving] = xf
        return x, note

    @staticmethod
    def _split_within(obs: np.ndarray, g: np.ndarray, logA: np.ndarray, alpha: np.ndarray, budget: float,
                      pairs: list[tuple[int, int]], d_lo: np.ndarray, d_hi: np.ndarray) -> np.ndarray:
        """Minimise ``sum_k A_k exp(-alpha_k x_k)`` s.t. ``g . x = budget`` and every pairwise
        ``x_i - x_j`` within ``[d_lo, d_hi]`` (convex; SLSQP from the runs' mean split)."""
        from scipy.optimize import minimize

        mean = obs.mean(axis=0)
        x0 = mean + (budget - float(g @ mean)) / float(g.sum())  # the mean split, on budget
        scale = float(np.exp(logA - alpha * x0).sum()) or 1.0

        def f(x: np.ndarray) -> float:
            return float(np.exp(logA - alpha * x).sum()) / scale

        def df(x: np.ndarray) -> np.ndarray:
            return -alpha * np.exp(logA - alpha * x) / scale

        cons = [{"type": "eq", "fun": lambda x: np.array([g @ x - budget]), "jac": lambda x: g[None, :]}]
        for (i, j), lo, hi in zip(pairs, d_lo, d_hi):
            e = np.zeros(len(g))
            e[i], e[j] = 1.0, -1.0
            cons.append({"type": "ineq", "fun": lambda x, e=e, lo=lo: np.array([e @ x - lo]), "jac": lambda x, e=e: e[None, :]})
            cons.append({"type": "ineq", "fun": lambda x, e=e, hi=hi: np.array([hi - e @ x]), "jac": lambda x, e=e: -e[None, :]})
        res = minimize(f, x0, jac=df, constraints=cons, method="SLSQP", options={"maxiter": 200, "ftol": 1e-12})
        x = res.x
        feasible = np.all(np.isfinite(x)) and abs(float(g @ x) - budget) < 1e-6 and all(
            lo - 1e-6 <= x[i] - x[j] <= hi + 1e-6 for (i, j), lo, hi in zip(pairs, d_lo, d_hi))
        return x if feasible else x0  # x0 (the runs' mean split) always meets the constraints

    # --- reporting ----------------------------------------------------------------------------
    def table(self) -> "pd.DataFrame":
        """The fitted relations, one row per non-scaling param.

        Columns: ``param``, ``kind`` (``power law`` or ``choice``), ``transform``, ``intercept``,
        ``exponent[<axis>]`` and ``exponent[<axis>]_std`` per scaling axis, ``curvature``,
        ``choice``. For a LogParam the exponents are those of ``h* ~ prod_k s_k^b_k``.
        """
        import pandas as pd

        rows = []
        for name, rel in self.relations.items():
            row: dict[str, Any] = {"param": name, "kind": "power law", "transform": rel.transform,
                                   "intercept": rel.intercept}
            for axis, b, sd in zip(rel.axes, rel.slopes, rel.slope_std):
                row[f"exponent[{axis}]"] = b
                row[f"exponent[{axis}]_std"] = sd
            row.update(curvature=rel.curvature, choice=None)
            rows.append(row)
        for name, choice in self.choices.items():
            rows.append({"param": name, "kind": "choice", "choice": choice})
        return pd.DataFrame(rows)

    def plot_relations(self, **kwargs: Any):
        """Each relation with its points and extrapolation band; see :func:`carbs_like.plots.plot_relations`."""
        from .plots import plot_relations

        return plot_relations(self, **kwargs)

    def plot_loss(self, **kwargs: Any):
        """The loss front with the fitted loss law; see :func:`carbs_like.plots.plot_loss`."""
        from .plots import plot_loss

        return plot_loss(self, **kwargs)


# ----------------------------------------------------------------------------- fitting ------
@dataclass(frozen=True)
class _Runs:
    """The successful observations, in the units of the laws.

    Attributes:
        x: `n x k` natural-log scales.
        T: `n x p` transformed values of the relation params.
        choice: `n x c` index of each ChoiceParam's value.
        loss: `n` raw losses.
        log_cost: `n` natural-log costs.
    """

    x: np.ndarray
    T: np.ndarray
    choice: np.ndarray
    loss: np.ndarray
    log_cost: np.ndarray


def _runs(space: SearchSpace, data: "ObservedData") -> tuple[_Runs, list[str], list[str]]:
    """Successful runs as arrays, the names of the relation params and of the ChoiceParams."""
    ok = data.ok & torch.isfinite(data.loss)
    X = data.X[ok]
    relation_params = [p.name for p in space.params if not isinstance(p, ChoiceParam) and p.name not in space.scaling]
    choice_params = [p.name for p in space.params if isinstance(p, ChoiceParam)]
    T = np.stack([_transformed(space[n], X[:, space.columns(n)][:, 0]) for n in relation_params], axis=-1) \
        if relation_params else np.zeros((X.shape[0], 0))
    C = np.stack([X[:, space.columns(n)].argmax(dim=-1).numpy() for n in choice_params], axis=-1) \
        if choice_params else np.zeros((X.shape[0], 0), dtype=int)
    x = _log_scales_of(space, X[:, space.scaling_columns])
    runs = _Runs(x=x, T=T, choice=C, loss=data.loss[ok].numpy(), log_cost=torch.log(data.cost[ok]).numpy())
    return runs, relation_params, choice_params


def _transformed(p, u: Tensor) -> np.ndarray:
    lo, hi = p.nominal
    return (lo + u * (hi - lo)).numpy()


def _log_scales_of(space: SearchSpace, U: Tensor) -> np.ndarray:
    """`m x k` natural logs of the scaling values at `m x k` scaling search coords."""
    cols = []
    for i, name in enumerate(space.scaling):
        p = space[name]
        lo, hi = p.nominal
        t = lo + U[:, i] * (hi - lo)
        kind = getattr(p, "kind", "log")
        if kind == "log":
            cols.append(t)
        elif kind == "linear":
            if bool((t <= 0).any()):
                raise ValueError(f"scaling axis {name!r} has non-positive values; a scaling law needs positive sizes")
            cols.append(torch.log(t))
        else:  # logit
            cols.append(torch.log(torch.sigmoid(t)))
    return torch.stack(cols, dim=-1).numpy()


def _n_coefficients(k: int, p: int, n_choices: Sequence[int]) -> int:
    return (2 * k + 1) + p * (k + 1) + p * (p + 1) // 2 + sum(c - 1 for c in n_choices) * (k + 1)


def _check_enough(space: SearchSpace, runs: _Runs, n_choices: Sequence[int]) -> None:
    k, p = len(space.scaling), runs.T.shape[1]
    need = max(8, int(1.5 * _n_coefficients(k, p, n_choices)) + 2)
    need_scales = 2 * k + 2  # the loss law has 2k + 1 coefficients
    n_ok = runs.x.shape[0]
    n_scales = len({tuple(r) for r in np.round(runs.x, 9).tolist()})
    if n_ok < need or n_scales < need_scales:
        raise ValueError(
            f"too few observations to fit a scaling law: {n_ok} successful run(s) at {n_scales} distinct "
            f"scale(s); with {k} scaling axes and {p} numeric params this needs at least {need} runs at "
            f"{need_scales} scales of {list(space.scaling)}. Run (or add()) more trials at different values "
            f"of the scaling axes."
        )


@dataclass(frozen=True)
class _Bowl:
    """The response surface behind the relations, in standardised units.

    ``log L = log(E + sum_k A_k exp(-alpha_k x_k)) + gamma(choices, x) + log(1 + q)``, with
    ``q = (t - a - B x)' H (t - a - B x)`` the excess loss of params ``t`` away from their
    optimum ``a + B x`` (``H = R R'`` positive definite), ``gamma`` a linear-in-x offset per
    non-reference choice. ``x`` and ``t`` are centred and scaled by the observed spread here;
    the loss law is kept in raw log scales.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    t_mean: np.ndarray
    t_std: np.ndarray
    k: int
    p: int
    n_choices: tuple[int, ...]
    flat: tuple[bool, ...] = ()  # axes the runs do not vary: no exponent is learnt along them

    @property
    def sizes(self) -> list[int]:
        k, p = self.k, self.p
        return [1 + 2 * k, p, p * k, p * (p + 1) // 2, sum(c - 1 for c in self.n_choices) * (k + 1)]

    def split(self, theta: np.ndarray) -> list[np.ndarray]:
        return np.split(theta, np.cumsum(self.sizes)[:-1])

    def H(self, r: np.ndarray) -> np.ndarray:
        R = np.zeros((self.p, self.p))
        R[np.tril_indices(self.p)] = r
        d = np.diag_indices(self.p)
        R[d] = np.exp(R[d])
        return R @ R.T

    def gamma(self, g: np.ndarray, xs: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """`n` choice offsets for `n x k` standardised scales and `n x c` choice indices."""
        out = np.zeros(xs.shape[0])
        G = g.reshape(-1, self.k + 1)
        row = 0
        for j, c in enumerate(self.n_choices):
            for level in range(1, c):
                m = choice[:, j] == level
                out[m] += G[row, 0] + xs[m] @ G[row, 1:]
                row += 1
        return out

    def log_loss(self, theta: np.ndarray, x: np.ndarray, T: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted log loss and excess ``q`` for `n x k` log scales, `n x p` T, `n x c` choices."""
        law, a, B, r, g = self.split(theta)
        xs = (x - self.x_mean) / self.x_std
        base = np.log(np.maximum(_loss_law_value(law, x), 1e-300))
        if self.p:
            D = (T - self.t_mean) / self.t_std - (a[None, :] + xs @ B.reshape(self.p, self.k).T)
            q = np.einsum("ni,ij,nj->n", D, self.H(r), D)
        else:
            q = np.zeros(x.shape[0])
        return base + self.gamma(g, xs, choice) + np.log1p(q), q

    def jacobian(self, theta: np.ndarray, x: np.ndarray, T: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """`n x len(theta)` derivatives of :meth:`log_loss` (its first output) by ``theta``."""
        law, a, B, r, g = self.split(theta)
        k, p, n = self.k, self.p, x.shape[0]
        xs = (x - self.x_mean) / self.x_std
        terms = np.exp(law[1:1 + k][None, :] - law[1 + k:][None, :] * x)  # n x k
        base = np.maximum(law[0] + terms.sum(axis=1), 1e-300)
        parts = [1.0 / base[:, None], terms / base[:, None], -x * terms / base[:, None]]
        if p:
            D = (T - self.t_mean) / self.t_std - (a[None, :] + xs @ B.reshape(p, k).T)
            R = np.zeros((p, p))
            R[np.tril_indices(p)] = r
            diag = np.diag_indices(p)
            R[diag] = np.exp(R[diag])
            v = D @ R  # n x p: v_j = sum_i D_i R_ij
            q = (v**2).sum(axis=1)
            HD = v @ R.T  # n x p
            scale = 1.0 / (1.0 + q)
            d_a = -2.0 * HD * scale[:, None]
            d_B = (d_a[:, :, None] * xs[:, None, :]).reshape(n, p * k)
            rows, cols = np.tril_indices(p)
            d_r = 2.0 * D[:, rows] * v[:, cols] * scale[:, None]
            d_r[:, rows == cols] *= R[rows[rows == cols], cols[rows == cols]]
            parts += [d_a, d_B, d_r]
        d_g = np.zeros((n, self.sizes[-1]))
        col = 0
        for j, c in enumerate(self.n_choices):
            for level in range(1, c):
                m = choice[:, j] == level
                d_g[m, col] = 1.0
                d_g[m, col + 1:col + 1 + k] = xs[m]
                col += k + 1
        parts.append(d_g)
        return np.hstack(parts)

    def relation(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw relation coefficients: `p` intercepts and `p x k` slopes (t* = c + S log s)."""
        _, a, B, _, _ = self.split(theta)
        slopes = self.t_std[:, None] * B.reshape(self.p, self.k) / self.x_std[None, :]
        return self.t_mean + self.t_std * a - slopes @ self.x_mean, slopes

    def start(self, runs: _Runs, law: np.ndarray, *, curvature: float = 0.3, trend: bool = True) -> np.ndarray:
        """Initial coefficients: the loss law given, the optima through the best fifth of the runs
        (relative to that law; a linear trend in x if ``trend``), a bowl of the given curvature."""
        resid = np.log(runs.loss) - np.log(_loss_law_value(law, runs.x))
        best = np.argsort(resid)[: max(2 * (self.k + 1), len(resid) // 5)]
        Ts = ((runs.T - self.t_mean) / self.t_std)[best]
        a, B = Ts.mean(axis=0), np.zeros((self.p, self.k))
        if trend and self.p:
            Z = np.hstack([np.ones((best.size, 1)), (runs.x[best] - self.x_mean) / self.x_std])
            coef, *_ = np.linalg.lstsq(Z, Ts, rcond=None)
            a, B = coef[0], np.clip(coef[1:].T, -3.0, 3.0)
            B[:, [i for i, f in enumerate(self.flat) if f]] = 0.0
        r = np.zeros(self.p * (self.p + 1) // 2)
        rows, cols = np.tril_indices(self.p)
        r[rows == cols] = math.log(curvature)
        return np.concatenate([law, a, B.ravel(), r, np.zeros(self.sizes[-1])])


def _bowl_bounds(bowl: _Bowl, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = bowl.k
    lo = np.full(sum(bowl.sizes), -np.inf)
    hi = np.full(sum(bowl.sizes), np.inf)
    lo[0], hi[0] = 0.0, float(loss.min()) * (1 - 1e-9)
    lo[1:1 + k], hi[1:1 + k] = -50.0, 80.0
    lo[1 + k:1 + 2 * k], hi[1 + k:1 + 2 * k] = 0.02, 2.0
    # The bowl's Cholesky diagonal is stored as a log: keep it within e^-8 .. e^8.
    r0 = sum(bowl.sizes[:3])
    rows, cols = np.tril_indices(bowl.p)
    diag = r0 + np.flatnonzero(rows == cols)
    lo[diag], hi[diag] = -8.0, 8.0
    for i, flat in enumerate(bowl.flat):
        if flat:  # the loss law barely moves along an axis the runs never varied
            hi[1 + k + i] = 0.02 + 1e-6
    return lo, hi


def _fit_bowl(bowl: _Bowl, runs: _Runs, theta0: np.ndarray, *, rows: np.ndarray | None = None,
              focus: float = 0.005, f_scale: float = 0.01, center_prior: float = 3.0,
              slope_prior: float = 10.0) -> np.ndarray:
    """Robust least squares of the log loss; a second pass weights runs near their optimum
    (excess ``q`` below ``focus``) most, as the quadratic bowl is a local description.

    Weak Gaussian priors, in the standardised units of the runs, keep the optimum where the runs
    can say something about it: its value at the runs' mean scale within ~``center_prior``
    standard deviations of the runs' values, and its slope within ~``slope_prior`` standard
    deviations of the values per standard deviation of the scales. A prior deviation of one std
    weighs as much as one run misfit by ``f_scale`` in log loss in the first pass (in the second,
    runs far from their optimum weigh less, the priors as much as before), so where the runs pin the bowl
    down (a curved loss, runs on both sides of the optimum) the data outweigh it many times; where
    the loss is nearly flat in a param, or one bootstrap resample leaves one side empty, it stops
    the optimum from running off to wherever a sharp, distant bowl fits the few runs best.
    """
    from scipy.optimize import least_squares

    rows = np.arange(runs.x.shape[0]) if rows is None else rows
    x, T, C, ly = runs.x[rows], runs.T[rows], runs.choice[rows], np.log(runs.loss[rows])
    lo, hi = _bowl_bounds(bowl, runs.loss)
    theta = np.clip(theta0, lo + 1e-9, hi - 1e-9)
    # Prior residuals f_scale * a / center_prior and f_scale * B / slope_prior (a, B standardised).
    a_start = bowl.sizes[0]
    n_prior = bowl.sizes[1] + bowl.sizes[2]
    prior_scale = np.concatenate([np.full(bowl.sizes[1], f_scale / center_prior),
                                  np.full(bowl.sizes[2], f_scale / slope_prior)])
    prior_jac = np.zeros((n_prior, theta.size))
    prior_jac[np.arange(n_prior), a_start + np.arange(n_prior)] = prior_scale
    w = np.ones(len(rows))
    for _ in range(2):
        def resid(th: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            prior = th[a_start:a_start + n_prior] * prior_scale
            return np.concatenate([(bowl.log_loss(th, x, T, C)[0] - ly) * w, prior])

        def jac(th: np.ndarray, w: np.ndarray = w) -> np.ndarray:
            return np.vstack([bowl.jacobian(th, x, T, C) * w[:, None], prior_jac])

        theta = least_squares(resid, theta, jac=jac, bounds=(lo, hi), loss="soft_l1", f_scale=f_scale,
                              method="trf", max_nfev=200 * len(theta)).x
        q = bowl.log_loss(theta, x, T, C)[1]
        w = 1.0 / np.sqrt(1.0 + q / focus)
    return theta


def _fit(space: SearchSpace, data: "ObservedData", *, n_bootstrap: int, seed: int) -> ScalingLaw:
    runs, relation_params, choice_params = _runs(space, data)
    n_choices = tuple(len(space[n].choices) for n in choice_params)  # type: ignore[attr-defined]
    _check_enough(space, runs, n_choices)
    k = len(space.scaling)
    evidence_x = runs.x
    runs, flat = _flatten_narrow_axes(space, runs)
    bowl = _Bowl(
        x_mean=runs.x.mean(axis=0), x_std=np.where(flat, 1.0, runs.x.std(axis=0)),
        t_mean=runs.T.mean(axis=0), t_std=np.maximum(runs.T.std(axis=0), 1e-9),
        k=k, p=runs.T.shape[1], n_choices=n_choices, flat=tuple(bool(f) for f in flat),
    )
    # Start the loss law from the lower envelope: the best run at each scale (quantile by scale bin).
    start_law = fit_loss_law(*_lower_envelope(runs), axes=space.scaling, n_bootstrap=0, robust=False)
    law0 = _law_vector(start_law)
    for i in np.flatnonzero(flat):  # move the exponent to its floor, keeping the term's value
        law0[1 + i] += (0.02 - law0[1 + k + i]) * bowl.x_mean[i]
        law0[1 + k + i] = 0.02
    # A few starts; keep the fit with the lowest robust misfit.
    best_cost, theta = math.inf, None
    for curvature, trend in ((0.3, True), (0.3, False), (1.0, True)):
        th = _fit_bowl(bowl, runs, bowl.start(runs, law0, curvature=curvature, trend=trend))
        cost = _misfit(bowl, runs, th)
        if cost < best_cost:
            best_cost, theta = cost, th

    rng = np.random.default_rng(seed)
    n = runs.x.shape[0]
    samples = np.stack([_fit_bowl(bowl, runs, theta, rows=rng.integers(0, n, n)) for _ in range(n_bootstrap)]) \
        if n_bootstrap else np.zeros((0, theta.size))
    samples = _drop_runaway_refits(bowl, runs, samples)

    x_obs, T_obs = evidence_x, runs.T
    relations = _relations(space, bowl, theta, samples, relation_params)
    q = bowl.log_loss(theta, runs.x, runs.T, runs.choice)[1]
    law = theta[:1 + 2 * k]
    loss_law = LossLaw(
        axes=tuple(space.scaling), E=float(law[0]), A=tuple(float(v) for v in np.exp(law[1:1 + k])),
        alpha=tuple(float(v) for v in law[1 + k:]), samples=tuple(tuple(map(float, s[:1 + 2 * k])) for s in samples),
        n_points=n,
    )
    cost_law = fit_cost_law(runs.x[:, ~flat], runs.log_cost, axes=[a for a, f in zip(space.scaling, flat) if not f])
    if flat.any():  # the cost does not move along an axis that was held constant
        slopes = iter(cost_law.slopes)
        cost_law = dataclasses.replace(cost_law, axes=tuple(space.scaling),
                                       slopes=tuple(0.0 if f else next(slopes) for f in flat))
    choices, scores = _choices(space, bowl, theta, runs, choice_params, cost_law)
    evidence = Evidence(
        log_scales=x_obs, values=T_obs, excess=q, loss=runs.loss, params=tuple(relation_params),
    )
    return ScalingLaw(space=space, relations=relations, choices=choices, choice_scores=scores,
                      loss_law=loss_law, cost_law=cost_law, evidence=evidence)


def _drop_runaway_refits(bowl: _Bowl, runs: _Runs, samples: np.ndarray, *, z: float = 6.0) -> np.ndarray:
    """The bootstrap refits without the runaways, for the uncertainty bands.

    A resample that happens to leave out the runs on one side of an optimum can fit a sharp bowl
    centred far away; one such refit in 32 would dominate a covariance (an lr interval of ten
    decades). A refit is dropped when its relations or loss law at the runs' smallest, mean or
    largest scale lie more than ``z`` robust standard deviations (1.4826 x MAD) from the median
    refit's; at most a quarter of the refits are dropped.
    """
    if len(samples) < 4:
        return samples
    k = bowl.k
    corners = np.stack([runs.x.min(axis=0), runs.x.mean(axis=0), runs.x.max(axis=0)])
    feats = []
    for th in samples:
        intercept, slopes = bowl.relation(th)
        rel = (intercept[None, :] + corners @ slopes.T).ravel()
        law = np.log(np.maximum(_loss_law_value(th[:1 + 2 * k], corners), 1e-300))
        feats.append(np.concatenate([rel, law]))
    F = np.asarray(feats)
    med = np.median(F, axis=0)
    mad = 1.4826 * np.median(np.abs(F - med), axis=0)
    score = (np.abs(F - med) / np.maximum(mad, 1e-6 * (1.0 + np.abs(med)))).max(axis=1)
    keep = score <= z
    if keep.sum() < len(samples) - len(samples) // 4:
        keep = score <= np.sort(score)[len(samples) - len(samples) // 4 - 1]
    return samples[keep]


def _misfit(bowl: _Bowl, runs: _Runs, theta: np.ndarray, *, f_scale: float = 0.01) -> float:
    """Soft-L1 misfit of the log loss over all runs (to compare fits from different starts)."""
    r = bowl.log_loss(theta, runs.x, runs.T, runs.choice)[0] - np.log(runs.loss)
    return float(np.sum(2.0 * (np.sqrt(1.0 + (r / f_scale) ** 2) - 1.0)))


def _flatten_narrow_axes(space: SearchSpace, runs: _Runs, *, min_factor: float = 1.5) -> tuple[_Runs, np.ndarray]:
    """Hold constant (with a warning) the scaling axes the runs vary by less than ``min_factor``:
    nothing can be learnt along them, and a slope fitted to their jitter would extrapolate wildly."""
    span = runs.x.max(axis=0) - runs.x.min(axis=0)
    flat = span < math.log(min_factor)
    for name, f, sp in zip(space.scaling, flat, span):
        if f:
            warnings.warn(
                f"scaling axis {name!r} varies only by a factor {math.exp(sp):.3g} across the successful runs; "
                f"the scaling law holds the best params and the loss constant along it. Run (or add()) trials "
                f"that vary {name} by 2x or more to learn how they move with it.",
                RuntimeWarning, stacklevel=4,
            )
    if not flat.any():
        return runs, flat
    x = runs.x.copy()
    x[:, flat] = x[:, flat].mean(axis=0)
    return dataclasses.replace(runs, x=x), flat


def _law_vector(law: LossLaw) -> np.ndarray:
    return np.array([law.E, *np.log(law.A), *law.alpha])


def _lower_envelope(runs: _Runs, *, bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The best run in each cell of a grid over the log scales (a rough front to start from)."""
    x = runs.x
    span = np.maximum(x.max(axis=0) - x.min(axis=0), 1e-9)
    cell = np.minimum(((x - x.min(axis=0)) / span * bins).astype(int), bins - 1)
    best: dict[tuple, int] = {}
    for i, key in enumerate(map(tuple, cell.tolist())):
        if key not in best or runs.loss[i] < runs.loss[best[key]]:
            best[key] = i
    idx = np.array(sorted(best.values()))
    if len(idx) < 2 * x.shape[1] + 2:
        idx = np.arange(x.shape[0])
    return x[idx], runs.loss[idx]


def _relations(space: SearchSpace, bowl: _Bowl, theta: np.ndarray, samples: np.ndarray,
               names: list[str]) -> dict[str, Relation]:
    intercept, slopes = bowl.relation(theta)
    if len(samples) >= 2:
        boot = [bowl.relation(s) for s in samples]
        coefs = np.stack([np.concatenate([c[:, None], S], axis=1) for c, S in boot])  # b x p x (k+1)
    else:
        coefs = None
    _, _, _, r, _ = bowl.split(theta)
    H = bowl.H(r) / np.outer(bowl.t_std, bowl.t_std) if bowl.p else np.zeros((0, 0))
    out = {}
    for j, name in enumerate(names):
        cov = np.cov(coefs[:, j, :], rowvar=False) if coefs is not None else np.zeros((bowl.k + 1,) * 2)
        out[name] = Relation(
            param=name, axes=tuple(space.scaling), intercept=float(intercept[j]),
            slopes=tuple(float(v) for v in slopes[j]),
            covariance=tuple(tuple(float(v) for v in row) for row in np.atleast_2d(cov)),
            transform=getattr(space[name], "kind", "linear"), curvature=float(H[j, j]),
        )
    return out


def _choices(space, bowl, theta, runs, choice_params, cost_law):
    """The choice of each ChoiceParam best at the largest observed scales, and every choice's
    loss factor there (1.0 for the reference choice; unobserved choices get NaN)."""
    if not choice_params:
        return {}, {}
    big = np.argsort(cost_law(runs.x))[-max(1, runs.x.shape[0] // 4):]
    xs = (runs.x[big] - bowl.x_mean) / bowl.x_std
    g = bowl.split(theta)[-1].reshape(-1, bowl.k + 1)
    choices, scores, row = {}, {}, 0
    for j, name in enumerate(choice_params):
        p = space[name]
        seen = set(runs.choice[:, j].tolist())
        factor = {}
        for level, value in enumerate(p.choices):
            offset = 0.0 if level == 0 else float((g[row + level - 1, 0] + xs @ g[row + level - 1, 1:]).mean())
            factor[value] = math.exp(offset) if level in seen else math.nan
        row += len(p.choices) - 1
        choices[name] = min((v for v in factor if not math.isnan(factor[v])), key=factor.get)
        scores[name] = factor
    return choices, scores


def _design(log_scales: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((log_scales.shape[0], 1)), log_scales])


def _to_param(p, t: float) -> tuple[Any, bool]:
    """A transformed value -> the param's value (rounded, within its bounds) and whether clamped."""
    lo, hi = p.nominal
    u = torch.tensor([[(t - lo) / (hi - lo)]], dtype=torch.float64)
    value = p.to_params(u)[0]
    # A bounded side's nominal end is the bound itself, so u outside [0, 1] there means clamped.
    clamped = (p.min is not None and float(u) < -1e-9) or (p.max is not None and float(u) > 1 + 1e-9)
    return value, bool(clamped)


# ----------------------------------------------------------------------------- loss and cost --
def _loss_law_value(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    k = x.shape[1]
    E, logA, alpha = theta[0], theta[1:1 + k], theta[1 + k:]
    return E + np.exp(logA[None, :] - alpha[None, :] * x).sum(axis=1)


def fit_loss_law(log_scales: np.ndarray, loss: np.ndarray, *, axes: Sequence[str],
                 n_bootstrap: int = 64, seed: int = 0, robust: bool = True) -> LossLaw:
    """Fit ``L = E + sum_k A_k / s_k^alpha_k`` to losses at `n x k` log scales (natural log).

    Least squares on log L (Huber with delta 1e-3 by default, as in Besiroglu et al. 2024,
    arXiv 2404.10102) from a grid of
    starting points, with ``0 <= E < min(L)`` and ``0.02 <= alpha_k <= 2``; the band comes from
    ``n_bootstrap`` refits on resampled points.

    Args:
        log_scales: `n x k` natural logs of the scaling values.
        loss: `n` positive losses.
        axes: the names of the k axes.
        n_bootstrap: refits for the band (0 for none).
        seed: seeds the bootstrap's own generator.
        robust: Huber loss on the log residuals (outliers barely pull the fit).

    Raises:
        ValueError: fewer than ``2k + 2`` points, or non-positive losses.
    """
    from scipy.optimize import least_squares

    x = np.atleast_2d(np.asarray(log_scales, dtype=float))
    y = np.asarray(loss, dtype=float)
    n, k = x.shape
    if n < 2 * k + 2:
        raise ValueError(f"the loss law L = E + sum A_k/s_k^alpha_k needs at least {2 * k + 2} points, got {n}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("losses for the loss law must be positive and finite")
    ly = np.log(y)
    lo = np.array([0.0, *[-50.0] * k, *[0.02] * k])
    hi = np.array([float(y.min()) * (1 - 1e-9), *[80.0] * k, *[2.0] * k])
    kwargs = dict(loss="huber", f_scale=1e-3) if robust else {}

    def resid(theta: np.ndarray, xs: np.ndarray, lys: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(_loss_law_value(theta, xs), 1e-300)) - lys

    def jac(theta: np.ndarray, xs: np.ndarray, lys: np.ndarray) -> np.ndarray:
        terms = np.exp(theta[1:1 + k][None, :] - theta[1 + k:][None, :] * xs)
        base = np.maximum(theta[0] + terms.sum(axis=1), 1e-300)[:, None]
        return np.hstack([1.0 / base, terms / base, -xs * terms / base])

    def solve(start: np.ndarray, xs: np.ndarray, lys: np.ndarray):
        start = np.clip(start, lo + 1e-9, hi - 1e-9)
        return least_squares(resid, start, jac=jac, bounds=(lo, hi), args=(xs, lys), method="trf",
                             max_nfev=300, **kwargs)

    best = None
    xm = x.mean(axis=0)
    for e_frac, a0 in itertools.product((0.0, 0.5, 0.9), (0.1, 0.3, 0.6)):
        E0 = e_frac * float(y.min())
        share = max(float(y.mean()) - E0, 1e-6) / k
        start = np.array([E0, *(math.log(share) + a0 * xm), *[a0] * k])
        res = solve(start, x, ly)
        if best is None or res.cost < best.cost:
            best = res
    theta = best.x
    samples = []
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        for _ in range(n_bootstrap):
            i = rng.integers(0, n, n)
            samples.append(tuple(float(v) for v in solve(theta, x[i], ly[i]).x))
    return LossLaw(axes=tuple(axes), E=float(theta[0]), A=tuple(float(v) for v in np.exp(theta[1:1 + k])),
                   alpha=tuple(float(v) for v in theta[1 + k:]), samples=tuple(samples), n_points=n)


def fit_cost_law(log_scales: np.ndarray, log_cost: np.ndarray, *, axes: Sequence[str]) -> CostLaw:
    """Least-squares fit of ``log cost = c + sum_k g_k log s_k`` (`n x k` and `n` arrays)."""
    Z = _design(np.atleast_2d(log_scales))
    coef, *_ = np.linalg.lstsq(Z, log_cost, rcond=None)
    r = log_cost - Z @ coef
    return CostLaw(axes=tuple(axes), intercept=float(coef[0]), slopes=tuple(float(v) for v in coef[1:]),
                   residual_std=float(np.sqrt(np.mean(r**2))))
