"""The results of a scaling-law fit: relations, the evidence behind them, and predictions
(small frozen dataclasses; :mod:`~carbs_like.scaling.law` builds and uses them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .power_laws import design

__all__ = ["Evidence", "Prediction", "Relation"]


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
            (for a LogParam: the loss grows by ~ ``curvature * ln(h / h*)^2``; NaN for the
            ``optima`` estimator, whose valleys are asymmetric and differ by scale).
        model_std: model error in transformed units, added in quadrature to every prediction's
            std (for ``optima``: the leave-one-scale-out RMS error of the per-scale optima).
        estimator: ``"surface"`` or ``"optima"`` (see :mod:`~carbs_like.scaling.select`).
        notes: what the user should know about this relation (an axis it is held constant along).
        held: the axes it is held constant along because the runs do not determine its trend
            there (its exponent is 0 there; see ``notes``).
        uncertain: the axes along which the fitted exponent is kept but its bootstrap interval
            holds 0: the runs do not tell which way the param moves there (see ``notes``).
    """

    param: str
    axes: tuple[str, ...]
    intercept: float
    slopes: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    transform: str
    curvature: float
    model_std: float = 0.0
    estimator: str = "surface"
    notes: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()

    @property
    def slope_std(self) -> tuple[float, ...]:
        cov = np.asarray(self.covariance)
        return tuple(float(math.sqrt(max(cov[i, i], 0.0))) for i in range(1, cov.shape[0]))

    def __call__(self, log_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of ``t(h*)`` at `m x k` log scales (natural log); two `m` arrays."""
        Z = design(np.atleast_2d(log_scales))
        coef = np.array([self.intercept, *self.slopes])
        var = np.einsum("mi,ij,mj->m", Z, np.asarray(self.covariance), Z) + self.model_std**2
        return Z @ coef, np.sqrt(np.maximum(var, 0.0))



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
            (param space). It holds the proposed value; where the relation's interval runs past a
            param's bound it reaches past it too (the proposal stays clamped, and ``notes`` says
            the best value may lie outside the searched range).
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

    def rows(self) -> list[dict[str, Any]]:
        """One row per param (the proposed value and its interval) and one for the predicted loss,
        for tables."""
        rows = [{"param": k, "value": v, "interval": self.intervals.get(k)} for k, v in self.config.items()]
        rows.append({"param": "predicted loss", "value": self.loss, "interval": self.loss_interval})
        return rows
