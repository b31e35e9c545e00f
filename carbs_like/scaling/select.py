"""Choosing the relation estimator by cross-validation along scale.

Two estimators of the relations compete:

* ``surface``: the joint response surface (:mod:`~carbs_like.scaling.surface`), which uses every
  run and works with any layout of runs; it comes in two variants, a lopsided valley (a curvature
  per side of each optimum) and a symmetric bowl, and the comparison picks between them too (the
  lopsided one is much closer on the real dense grids, 0.08% against 0.33% in-sample; on the MoE
  sweep's tokens split it extrapolates worse);
* ``optima``: per-scale optima and weighted power laws through them
  (:mod:`~carbs_like.scaling.optima`), which needs groups of runs at the same scale (a sweep at
  each size) and then follows an asymmetric, partly diverging valley much more closely.

Neither is right everywhere, so the runs decide: the groups at the largest scales (a quarter of
them, at least two) are held out, the estimators are refitted on the rest, and each proposes for
the held-out scales; the one whose proposals lie lower in the held-out groups' own local valleys
wins. With too few groups (runs scattered over many scales, as in a tuner's own search) the surface
is used, and the two surfaces are compared by how well they predict the losses of the runs at the
largest quarter of scales, refitted without them. :func:`held_out_loss_error` measures the loss
law's error the same way, for both layouts.

Everything here works on numpy arrays in the units of the laws; no param names.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .optima import GroupOptimum, OptimaRelation, fit_through_optima, group_optima, local_excess
from .surface import Runs, fit_surface, n_coefficients

__all__ = ["Choice", "choose_estimator", "compare_surfaces", "held_out_loss_error", "lopsided_wins"]


@dataclass(frozen=True)
class Choice:
    """The outcome of the cross-validation.

    Attributes:
        estimator: ``"surface"`` or ``"optima"``.
        sided: which surface to fit (the lopsided one, or the symmetric bowl): the one that
            proposed better in the comparison (lopsided when there was none).
        relations: for ``optima``, one :class:`OptimaRelation` per relation param (else empty).
        scores: the held-out mean log-loss excess of each estimator's proposals (empty when
            there were too few groups to compare).
        optima: the per-scale optima found (possibly empty).
        held_std: per estimator, `p` RMS errors of its proposals against the held-out groups'
            best runs (transformed units), when there was a comparison.
    """

    estimator: str
    relations: tuple[OptimaRelation, ...]
    scores: dict[str, float]
    optima: tuple[GroupOptimum, ...]
    held_std: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    sided: bool = True


def _in_groups(x: np.ndarray, groups: Sequence[GroupOptimum]) -> np.ndarray:
    keys = np.round(x, 6)
    out = np.zeros(len(x), dtype=bool)
    for g in groups:
        out |= np.all(keys == np.round(g.x, 6), axis=1)
    return out


def choose_estimator(runs: Runs, x_failed: np.ndarray, T_failed: np.ndarray, *, axes: Sequence[str],
                     n_choices: Sequence[int], seed: int) -> Choice:
    """Per-scale optima of the runs, and which estimator proposes better for held-out scales."""
    k, p = runs.x.shape[1], runs.T.shape[1]
    if p == 0:
        return Choice("surface", (), {}, ())
    optima = group_optima(runs.x, runs.T, runs.loss, x_failed, T_failed)
    if len(optima) < k + 4:
        scores = compare_surfaces(runs, axes=axes, n_choices=n_choices, seed=seed)
        return Choice("surface", (), scores, tuple(optima), sided=lopsided_wins(scores))
    size = np.array([o.x.sum() for o in optima])
    n_out = max(2, len(optima) // 4)
    order = np.argsort(size)
    held = [optima[i] for i in order[-n_out:]]
    kept = [optima[i] for i in order[:-n_out]]
    X_held = np.stack([h.x for h in held])

    train = ~_in_groups(runs.x, held)
    sub = dataclasses.replace(runs, x=runs.x[train], T=runs.T[train], choice=runs.choice[train],
                              loss=runs.loss[train], log_cost=runs.log_cost[train])
    proposed = {}
    for name, sided in (("surface", True), ("symmetric surface", False)):
        surf = fit_surface(sub, axes=axes, n_choices=n_choices, n_bootstrap=0, seed=seed, sided=sided)
        proposed[name] = surf.intercepts[None, :] + X_held @ surf.slopes.T
    rels = [fit_through_optima(kept, j) for j in range(p)]
    proposed["optima"] = np.stack([r.intercept + X_held @ r.slopes for r in rels], axis=1)
    scores = {name: float(np.mean([local_excess(h.theta, t[i:i + 1])[0] for i, h in enumerate(held)]))
              for name, t in proposed.items()}
    t_best = np.stack([h.t_best for h in held])
    held_std = {name: np.sqrt(np.mean((t - t_best) ** 2, axis=0)) for name, t in proposed.items()}
    sided = scores["surface"] <= scores["symmetric surface"]
    surface = "surface" if sided else "symmetric surface"
    held_std["surface"] = held_std[surface]  # the surface the law fits
    if scores["optima"] < scores[surface]:
        return Choice("optima", tuple(fit_through_optima(optima, j) for j in range(p)), scores, tuple(optima),
                      held_std, sided)
    return Choice("surface", (), scores, tuple(optima), held_std, sided)


def lopsided_wins(scores: dict[str, float]) -> bool:
    """Whether :func:`compare_surfaces` prefers the lopsided surface (also when it could not compare)."""
    return not scores or scores["surface"] <= scores["symmetric surface"]


def compare_surfaces(runs: Runs, *, axes: Sequence[str], n_choices: Sequence[int], seed: int) -> dict[str, float]:
    """Without groups to score proposals in: the RMS error in log L of the lopsided and the
    symmetric surface at the runs of the largest quarter of total scale, each refitted without
    them (empty with too few runs to refit)."""
    k, p = runs.x.shape[1], runs.T.shape[1]
    key = runs.x.sum(axis=1)
    out = key >= np.quantile(key, 0.75) - 1e-9
    if out.sum() < 4 or (~out).sum() < 2 * n_coefficients(k, p, n_choices) or np.ptp(key[~out]) < 1e-9:
        return {}
    sub = dataclasses.replace(runs, x=runs.x[~out], T=runs.T[~out], choice=runs.choice[~out],
                              loss=runs.loss[~out], log_cost=runs.log_cost[~out])
    scores = {}
    for name, sided in (("surface", True), ("symmetric surface", False)):
        with warnings.catch_warnings():  # the refit's own warnings (narrow axes) are not the user's
            warnings.simplefilter("ignore")
            fit = fit_surface(sub, axes=axes, n_choices=n_choices, n_bootstrap=0, seed=seed, sided=sided)
        x = np.where(fit.flat[None, :], fit.surface.x_mean[None, :], runs.x[out])
        err = np.log(runs.loss[out]) - fit.surface.log_loss(fit.theta, x, runs.T[out], runs.choice[out])[0]
        scores[name] = float(np.sqrt(np.mean(err**2)))
    return scores


def held_out_loss_error(runs: Runs, *, axes: Sequence[str], n_choices: Sequence[int], seed: int,
                        optima: Sequence[GroupOptimum] = ()) -> tuple[float, float] | None:
    """How far the surface's loss law misses at scales it was not fitted on: ``(rms, distance)``.

    The runs at the largest scales are held out in turn along each axis that varies and along
    their sum of log scales (the top quarter, or the top level of a grid); the surface is refitted
    on the rest and scored on them: the RMS error in log L of the held-out groups' best losses
    when ``optima`` (groups of runs per scale) are given, else of every held-out run, times the
    ratio of the kept runs' span to all the runs' span along the split (an error that comes from
    fitted exponents falls as the span they are fitted on widens). Returned is the split with the
    largest error per unit of distance, with the held-out points' mean distance (natural-log
    scales) from the centre of the runs kept. None with too few runs to refit.
    """
    k, p = runs.x.shape[1], runs.T.shape[1]
    keys = [runs.x.sum(axis=1)] + [runs.x[:, i] for i in range(k) if np.ptp(runs.x[:, i]) > np.log(1.5)]
    best: tuple[float, float] | None = None
    for key in keys:
        out = key >= np.quantile(key, 0.75) - 1e-9
        keep = ~out
        if out.sum() < 4 or keep.sum() < 2 * n_coefficients(k, p, n_choices) or np.ptp(key[keep]) < 1e-9:
            continue
        sub = dataclasses.replace(runs, x=runs.x[keep], T=runs.T[keep], choice=runs.choice[keep],
                                  loss=runs.loss[keep], log_cost=runs.log_cost[keep])
        with warnings.catch_warnings():  # the refit's own warnings (narrow axes) are not the user's
            warnings.simplefilter("ignore")
            fit = fit_surface(sub, axes=axes, n_choices=n_choices, n_bootstrap=0, seed=seed)
        held = [o for o in optima if _in_groups(runs.x[out], [o]).any()]
        if held:
            x = np.stack([o.x for o in held])
            err = np.log([o.best for o in held]) - np.log(fit.loss_law(x))
        else:
            x = runs.x[out]
            err = np.log(runs.loss[out]) - fit.surface.log_loss(fit.theta, x, runs.T[out], runs.choice[out])[0]
        # The refit's exponents rest on the narrower span of the runs kept; the full fit's error
        # at a distance shrinks with its wider span (the lever arm of a fitted slope).
        rms = float(np.sqrt(np.mean(err**2))) * float(np.ptp(key[keep]) / np.ptp(key))
        distance = float(np.mean(np.linalg.norm(x - runs.x[keep].mean(axis=0), axis=1)))
        if np.isfinite(rms) and distance > 0 and (best is None or rms / distance > best[0] / best[1]):
            best = (rms, distance)
    return best
