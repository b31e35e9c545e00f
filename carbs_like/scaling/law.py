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
    q = d' H d,    d_j = (t_j - t*_j(s)) exp(+-sigma_j / 2),    t*(s) = a + B log s,

where ``t`` are the transformed values of the numeric params, ``t*(s)`` their optimum at scale s
(the relations), ``H`` a positive-definite curvature (how fast the loss rises away from the optimum,
with the interactions between params, e.g. lr x weight decay), ``sigma_j`` the log ratio of the
curvatures above and below the optimum (real valleys are lopsided: doubling lr costs more than
halving it), and ``gamma`` a loss factor per choice that may drift with scale. The lopsided surface
and a symmetric bowl (sigma = 0) compete by cross-validation along scale (below; without groups of
runs, by their error on the runs at the largest scales, refitted without them): on real dense grids
thinned to 10 runs each it halves the symmetric bowl's gap (``scaling_real.py --scattered 3``).
This is a second-order (response-surface) model of the loss around a moving optimum: every run
informs it, and the near-optimal runs most (a second pass weights runs by ``1 / sqrt(1 + q / 0.005)``,
since a quadratic bowl is a local description: the loss is not symmetric about its optimum, and on
the demo's runs a bowl fitted with weights ``1 / sqrt(1 + q / 0.05)`` centred lr at
half the value of the best runs at the largest size). It is fitted by robust least squares (soft-L1
on the log loss, so a few outliers barely pull), with weak priors that keep the optimum near the
runs; uncertainties come from refits on bootstrap resamples of the runs. Failed runs carry no loss
and are left out of the surface (the per-scale optima below use them).

Where the runs come in sweeps (groups of runs at the same scale, e.g. a full lr x batch grid at
each (N, D)), a second estimator competes for the relations (:mod:`~carbs_like.scaling.optima`):
each group's optimum from a local fit that lets the loss valley be lopsided (a steeper wall
above the best lr than below it) and treats failed runs and runs far from the best as censored
evidence (the loss there is at least this high), then weighted power laws through those optima,
with the axes each relation depends on chosen by leave-one-scale-out cross-validation (the
constant, i.e. carry-over, is one candidate). The two estimators are compared by
cross-validation along scale (:mod:`~carbs_like.scaling.select`): the largest scales are held
out, the estimators (optima, lopsided and symmetric surface) are refitted on the rest, and the
one whose proposals lie lower in the held-out groups' valleys gives the relations. On the real
dense Step Law grids (``benchmarks/scaling_real.py``) the per-scale optima win (the lopsided
surface is second: 0.084% in-sample against the symmetric bowl's 0.33%, which centres lr on the
flat low-lr side of the real valley).

Intervals include model error: for the optima, the leave-one-scale-out and held-out-scale error
of the law against each group's best run; for the surface where groups exist, its held-out-scale
error. The loss band adds, within the runs' scales, the spread of the groups' best losses (or
of every run, when the runs are scattered) around the loss law, and beyond them its error at
held-out scales, growing in proportion to the distance (``select.held_out_loss_error``). A relation whose bootstrap refits disagree, within the observed scales,
by more than the range of values the runs tried is not determined by the runs: it is held
constant (at its value at the runs' mean scale) and says so in ``predict().notes``. An exponent
whose 90% bootstrap interval holds 0 is kept, with its variance (the intervals widen beyond the
runs as much as the trend is unknown), and said to be undetermined in sign
(``Relation.uncertain``, the notes, the plots).

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
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..space import ChoiceParam, SearchSpace
from ..trial import ObservedData
from .budget import compute_optimal
from .power_laws import CostLaw, LossLaw, design, fit_cost_law
from .results import Evidence, Prediction, Relation
from .design import encode
from .select import choose_estimator, compare_surfaces, held_out_loss_error, lopsided_wins
from .surface import Runs, fit_surface, n_coefficients
from ..threads import limited_threads

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Evidence", "Prediction", "Relation", "ScalingLaw"]

# A relation's exponent along an axis has a determined sign when its bootstrap interval at this
# level excludes 0 (else the relation says so, see _undetermined).
TREND_LEVEL = 0.9


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
        held: `k` log scales at which axes the runs barely varied are held (NaN for the others;
            empty: none held).
        curvature_matrix: `p x p` the loss's curvature around the optimum in transformed units
            (the response surface's), behind :meth:`predict_loss`; ``curvature_sides`` the log
            ratio of each param's curvature above its optimum to below it (0: symmetric).
    """

    space: SearchSpace
    relations: Mapping[str, Relation]
    choices: Mapping[str, Any]
    choice_scores: Mapping[str, Mapping[Any, float]]
    loss_law: LossLaw
    cost_law: CostLaw
    evidence: Evidence = field(repr=False)
    held: tuple[float, ...] = ()
    curvature_matrix: tuple[tuple[float, ...], ...] = ()
    curvature_sides: tuple[float, ...] = ()

    # --- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        tuner: Any,
        *,
        n_bootstrap: int = 32,
        seed: int | None = None,
        threads: int | None = 1,
    ) -> "ScalingLaw":
        """Fit the scaling law from a tuner's observations (see the module docstring).

        Args:
            tuner: the tuner; its runs may be asked or imported with ``add``. Failed runs are
                left out (they have no loss).
            n_bootstrap: refits on resampled runs behind the uncertainties (0: none).
            seed: seeds the bootstrap's own generator (default: the tuner's seed).
            threads: BLAS and torch threads during the fit (default 1: small fits on a busy
                machine run many times slower multi-threaded); None leaves them as they are.
                The previous settings are restored afterwards.

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
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        seed = tuner.seed if seed is None else int(seed)
        with limited_threads(threads):
            return _fit(space, tuner.observed_data(), n_bootstrap=n_bootstrap, seed=seed)

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
            param = self.space[name]
            value, clamped = param.from_transformed(float(mean[0]))
            lo, hi, beyond = param.interval_from_transformed(float(mean[0] - z * std[0]), float(mean[0] + z * std[0]))
            config[name] = value
            intervals[name] = (lo, hi)
            notes.extend(rel.notes)
            if beyond:
                notes.append(
                    f"{name}: its {level:.0%} interval [{lo:.3g}, {hi:.3g}] runs past the param's "
                    f"{' and '.join(beyond)}: the best value may lie outside the searched range "
                    f"(widen it there if the value allows)"
                )
            if clamped:
                note = f"{name}: the relation's value lies outside the param's bounds; clamped to {value!r}"
                notes.append(note)
                warnings.warn(f"{note} (bounds min={self.space[name].min!r}, max={self.space[name].max!r})",
                              UserWarning, stacklevel=3)
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
            x, note = compute_optimal(cost, loss_law=self.loss_law, cost_law=self.cost_law,
                                      observed=self.evidence.log_scales,
                                      held=np.asarray(self.held) if self.held else None)
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

    def predict_loss(self, configs: "Sequence[Mapping[str, Any]]", *, level: float = 0.9) -> "pd.DataFrame":
        """Predicted loss of any configs at any scale (a what-if): the loss law at each config's
        scale, times ``1 + d' H d`` for its distance ``d`` (transformed units) from the relations'
        optimum there (each side scaled by its own curvature, as the surface has it), times its choices' loss factors (:attr:`choice_scores`).

        Args:
            configs: full configs (plain dicts); scaling values may lie beyond the searched bounds.
            level: coverage of the band (the loss law's band, scaled the same way).

        Returns:
            A DataFrame with one row per config: ``loss``, ``loss_lo``, ``loss_hi``.
        """
        import pandas as pd

        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        H = np.asarray(self.curvature_matrix) if self.curvature_matrix else np.zeros((0, 0))
        rows = []
        for config in configs:
            missing = [n for n in self.space.names if n not in config]
            if missing:
                raise ValueError(f"config {dict(config)!r} misses {missing}: give every param of the space")
            x, _ = self._log_scales({s: config[s] for s in self.space.scaling}, None, {})
            d = np.array([float(self.space[name].transform(float(config[name]))) - float(rel(x[None, :])[0][0])
                          for name, rel in self.relations.items()])
            if self.curvature_sides:  # each side of the optimum its own curvature
                d = d * np.exp(np.where(d > 0, 0.5, -0.5) * np.asarray(self.curvature_sides))
            factor = 1.0 + float(d @ H @ d) if H.size else 1.0
            for name, scores in self.choice_scores.items():
                f = scores.get(config[name], math.nan)
                factor *= f if math.isfinite(f) else 1.0
            lo, hi = self.loss_law.band(x, level=level)
            rows.append({"loss": float(self.loss_law(x)[0]) * factor, "loss_lo": float(lo[0]) * factor,
                         "loss_hi": float(hi[0]) * factor})
        return pd.DataFrame(rows, columns=["loss", "loss_lo", "loss_hi"])

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
        """Each relation with its points and extrapolation band; see :func:`carbs_like.scaling.plots.plot_relations`."""
        from .plots import plot_relations

        return plot_relations(self, **kwargs)

    def plot_loss(self, **kwargs: Any):
        """The loss front with the fitted loss law; see :func:`carbs_like.scaling.plots.plot_loss`."""
        from .plots import plot_loss

        return plot_loss(self, **kwargs)


# ----------------------------------------------------------------------------- fitting ------
def _failed(space: SearchSpace, data: ObservedData, relation_params: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Log scales and transformed relation values of the failed runs (censored evidence)."""
    X = data.X[data.failed]
    if X.shape[0] == 0 or not relation_params:
        return np.zeros((0, len(space.scaling))), np.zeros((0, len(relation_params)))
    return space.log_scales(X), np.stack([space.transformed(X, n) for n in relation_params], axis=-1)


def _runs(space: SearchSpace, data: ObservedData) -> tuple[Runs, list[str], list[str]]:
    """Successful runs in the units of the laws, the names of the relation params and of the
    ChoiceParams."""
    ok = data.ok & torch.isfinite(data.loss)
    relation_params = [p.name for p in space.params if not isinstance(p, ChoiceParam) and p.name not in space.scaling]
    choice_params = [p.name for p in space.params if isinstance(p, ChoiceParam)]
    x, T, C = encode(space, data.X[ok])
    runs = Runs(x=x, T=T, choice=C, loss=data.loss[ok].numpy(), log_cost=torch.log(data.cost[ok]).numpy())
    return runs, relation_params, choice_params


def _check_enough(space: SearchSpace, runs: Runs, n_choices: list[int]) -> None:
    k, p = len(space.scaling), runs.T.shape[1]
    need = max(8, int(1.5 * n_coefficients(k, p, n_choices)) + 2)
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


def _fit(space: SearchSpace, data: ObservedData, *, n_bootstrap: int, seed: int) -> "ScalingLaw":
    runs, relation_params, choice_params = _runs(space, data)
    choice_sizes = [len(space[n].choices) for n in choice_params]  # type: ignore[attr-defined]
    _check_enough(space, runs, choice_sizes)
    chosen = None
    if not choice_sizes:  # per-scale optima compare runs at one scale; choices would confound them
        x_f, T_f = _failed(space, data, relation_params)
        chosen = choose_estimator(runs, x_f, T_f, axes=space.scaling, n_choices=choice_sizes, seed=seed)
        sided = chosen.sided
    else:
        sided = lopsided_wins(compare_surfaces(runs, axes=space.scaling, n_choices=choice_sizes, seed=seed))
    fit = fit_surface(runs, axes=space.scaling, n_choices=choice_sizes, n_bootstrap=n_bootstrap, seed=seed,
                      sided=sided)
    flat = fit.flat
    k = len(space.scaling)
    other = None
    if chosen is None or chosen.estimator == "surface":
        with warnings.catch_warnings():  # the main fit has said everything about the runs already
            warnings.simplefilter("ignore")
            other = fit_surface(runs, axes=space.scaling, n_choices=choice_sizes, n_bootstrap=0, seed=seed,
                                sided=not sided)
    relations = _relations(space, runs, fit, relation_params, chosen, other)
    groups = chosen.optima if chosen is not None and len(chosen.optima) > 2 + 2 * k else ()
    held = held_out_loss_error(runs, axes=space.scaling, n_choices=choice_sizes, seed=seed, optima=groups)
    x_fit = runs.x.copy()  # the log scales as fitted: axes the runs barely vary held at their mean
    if flat.any():
        x_fit[:, flat] = x_fit[:, flat].mean(axis=0)
    varies = np.ptp(runs.x, axis=0) > 1e-9  # fit on every axis that varies at all (partial slopes)...
    cost_law = fit_cost_law(runs.x[:, varies], runs.log_cost, axes=[a for a, v in zip(space.scaling, varies) if v])
    if flat.any() or not varies.all():  # ...but the cost does not move along an axis held constant
        g = np.zeros(k)
        g[varies] = cost_law.slopes
        cost_law = CostLaw(axes=tuple(space.scaling), intercept=cost_law.intercept + float(g[flat] @ x_fit[0, flat]),
                           slopes=tuple(0.0 if f else float(v) for f, v in zip(flat, g)), residual_std=cost_law.residual_std)
    choices, scores = _choices(space, fit, x_fit, runs, choice_params, cost_law)
    evidence = Evidence(log_scales=runs.x, values=runs.T, excess=fit.excess, loss=runs.loss,
                        params=tuple(relation_params))
    return ScalingLaw(space=space, relations=relations, choices=choices, choice_scores=scores,
                      loss_law=_with_model_error(fit.loss_law, fit, runs, x_fit, chosen, held),
                      cost_law=cost_law, evidence=evidence,
                      held=tuple(float(m) if f else math.nan for m, f in zip(x_fit.mean(axis=0), flat)),
                      curvature_matrix=tuple(tuple(float(v) for v in row) for row in fit.curvature_matrix),
                      curvature_sides=tuple(float(v) for v in fit.sides))


def _with_model_error(loss_law: LossLaw, fit: Any, runs: Runs, x_fit: np.ndarray, chosen: Any,
                      held: tuple[float, float] | None) -> LossLaw:
    """The loss law with its model error in log L: within the runs' scales, the RMS of the
    per-scale best losses around it (inflated for the law's 2k + 1 coefficients) with groups of
    runs per scale, else the RMS of every run around the surface; beyond, the error measured at
    held-out scales (see select.py), growing in proportion to the distance from the runs' centre."""
    n_coef = 1 + 2 * len(loss_law.axes)
    if chosen is not None and len(chosen.optima) > n_coef + 1:
        x = np.stack([o.x for o in chosen.optima])
        r = np.log([o.best for o in chosen.optima]) - np.log(loss_law(x))
        std = math.sqrt(float(np.sum(r**2)) / (len(r) - n_coef))
    else:
        r = np.log(runs.loss) - fit.surface.log_loss(fit.theta, x_fit, runs.T, runs.choice)[0]
        std = float(np.sqrt(np.mean(r**2)))
    if held is None:
        return dataclasses.replace(loss_law, model_std=std)
    return dataclasses.replace(loss_law, model_std=std, held_std=held[0], held_distance=held[1],
                               center=tuple(float(v) for v in runs.x.mean(axis=0)))


def _relations(space: SearchSpace, runs: Runs, fit, relation_params: list[str], chosen: Any,
               other: Any = None) -> dict[str, Relation]:
    """The relations from the estimator that proposes better for held-out scales (see select.py);
    for the surface, its difference to ``other`` (the surface not chosen) enters the covariance."""
    k = len(space.scaling)
    relations = {}
    for j, name in enumerate(relation_params):
        if chosen is not None and chosen.estimator == "optima":
            rel = chosen.relations[j]
            model_std = max(rel.model_std, float(chosen.held_std["optima"][j]))
            notes = tuple(
                f"{name}: the per-scale optima support no trend along {axis} (leave-one-scale-out "
                f"cross-validation); held constant along it"
                for axis, used, flat in zip(space.scaling, rel.axes_used, fit.flat) if not used and not flat)
            relations[name] = Relation(
                param=name, axes=tuple(space.scaling), intercept=rel.intercept,
                slopes=tuple(float(v) for v in rel.slopes),
                covariance=tuple(tuple(float(v) for v in row) for row in rel.covariance),
                transform=space[name].kind, curvature=math.nan, model_std=model_std,
                estimator="optima", notes=notes,
                held=tuple(axis for axis, used, flat in zip(space.scaling, rel.axes_used, fit.flat) if not used and not flat),
            )
            continue
        cov = np.cov(fit.coefficients[:, j, :], rowvar=False) if len(fit.coefficients) >= 2 else np.zeros((k + 1,) * 2)
        intercept, slopes = float(fit.intercepts[j]), np.asarray(fit.slopes[j], dtype=float)
        model_std = float(chosen.held_std["surface"][j]) if chosen is not None and chosen.held_std else 0.0
        notes: tuple[str, ...] = ()
        held: tuple[str, ...] = ()
        uncertain: tuple[str, ...] = ()
        lo, hi = float(runs.T[:, j].min()), float(runs.T[:, j].max())
        Zs = design(runs.x)
        spread = np.sqrt(np.maximum(np.einsum("mi,ij,mj->m", Zs, np.atleast_2d(cov), Zs), 0.0))
        if spread.max() > (hi - lo) / 2:
            # Within the very scales the runs cover, the bootstrap refits disagree about the
            # optimum by more than the range of values the runs tried: the runs do not determine
            # the relation. Fall back to a constant (carry-over) at the runs' mean scale.
            Z = design(runs.x.mean(axis=0)[None, :])[0]
            mid = float(np.clip(intercept + float(runs.x.mean(axis=0) @ slopes), lo, hi))
            var = float(Z @ np.atleast_2d(cov) @ Z)
            exps = ", ".join(f"{a} {b:+.2f}" for a, b in zip(space.scaling, slopes))
            tried = f"{space[name].from_transformed(lo)[0]:.3g}..{space[name].from_transformed(hi)[0]:.3g}"
            notes = (f"{name}: the runs do not determine how it moves with scale (exponents {exps}, whose "
                     f"refits disagree within the observed scales by more than the values the runs tried, "
                     f"{tried}); held constant at its value at the runs' mean scale instead",)
            intercept, slopes = mid, np.zeros(k)
            cov = np.zeros((k + 1, k + 1))
            cov[0, 0] = var
            model_std = max(model_std, float(runs.T[:, j].std()))
            held = tuple(space.scaling)
        else:
            uncertain, notes = _undetermined(name, space.scaling, slopes, cov)
            if other is not None:
                delta = np.concatenate([[other.intercepts[j] - fit.intercepts[j]], other.slopes[j] - fit.slopes[j]])
                cov = np.atleast_2d(cov) + np.outer(delta, delta)
        relations[name] = Relation(
            param=name, axes=tuple(space.scaling), intercept=intercept,
            slopes=tuple(float(v) for v in slopes),
            covariance=tuple(tuple(float(v) for v in row) for row in np.atleast_2d(cov)),
            transform=space[name].kind, curvature=float(fit.curvature[j]), model_std=model_std, notes=notes,
            held=held, uncertain=uncertain,
        )
    return relations


def _undetermined(name: str, axes: Sequence[str], slopes: np.ndarray, cov: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The axes along which an exponent's ``TREND_LEVEL`` bootstrap interval holds 0 (the runs do
    not tell which way the param moves along them), and a note for each. The relation keeps the
    fitted exponent there, with its variance, so its intervals beyond the runs are as wide as the
    trend is unknown. (Holding it constant there instead was tried: on a demo whose lr exponent in
    n_params came out -0.50 +- 0.53, the held lr lost by 2.8% at 3x to lr x0.5, where the fitted
    exponent's proposal had won by 2.0%.)

    Returns:
        ``(axes, notes)``.
    """
    z = NormalDist().inv_cdf(0.5 + TREND_LEVEL / 2)
    std = np.sqrt(np.maximum(np.diag(np.atleast_2d(cov))[1:], 0.0))
    out = np.flatnonzero((np.abs(slopes) < z * std) & (std > 0))
    notes = tuple(f"{name}: the runs do not determine which way it moves along {axes[a]} (exponent {slopes[a]:+.2f} "
                  f"+- {std[a]:.2f}, whose {TREND_LEVEL:.0%} interval holds 0); extrapolated with it, its "
                  f"interval as wide as that exponent's" for a in out)
    return tuple(axes[a] for a in out), notes


def _choices(space: SearchSpace, fit, x_fit: np.ndarray, runs: Runs, choice_params: list[str],
             cost_law: CostLaw) -> tuple[dict[str, Any], dict[str, dict[Any, float]]]:
    """The choice of each ChoiceParam best at the largest observed scales, and every choice's
    loss factor there (1.0 for the reference choice; unobserved choices get NaN)."""
    if not choice_params:
        return {}, {}
    big = x_fit[np.argsort(cost_law(x_fit))[-max(1, x_fit.shape[0] // 4):]]
    choices, scores, row = {}, {}, 0
    for j, name in enumerate(choice_params):
        p = space[name]
        seen = set(runs.choice[:, j].tolist())
        factor = {}
        for level, value in enumerate(p.choices):
            offset = 0.0 if level == 0 else fit.choice_offset(row + level - 1, big)
            factor[value] = math.exp(offset) if level in seen else math.nan
        row += len(p.choices) - 1
        choices[name] = min((v for v in factor if not math.isnan(factor[v])), key=factor.get)
        scores[name] = factor
    return choices, scores
