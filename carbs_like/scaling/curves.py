"""The data behind a relation plot: for each relation and scaling axis, the fitted curve, its band,
the runs near their optimum and the proposal, in param space.

One function, :func:`relation_curves`, feeds both the matplotlib figure (:mod:`.plots`, used by the
report) and the live page's JSON, so the two cannot drift apart. No matplotlib here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

# The law arrives as an argument: this module never imports law.py. Annotations say "ScalingLaw".

__all__ = ["RelationCurve", "bounds", "default_near", "relation_curves", "target_log_scales"]


@dataclass(frozen=True)
class RelationCurve:
    """One panel: the best value of ``param`` against scaling axis ``axis``, other axes at ``reference``.

    Args:
        param: the relation's param.
        axis: the scaling axis along the x-axis.
        transform: the param's kind (``"log"``, ``"linear"``, ``"logit"``).
        determined: False where the runs do not determine how the param moves along ``axis``
            (the curve is then a constant and ``lower``/``upper`` equal it).
        notes: the relation's notes on this axis (why it is not determined).
        uncertain: the fitted exponent along ``axis`` is kept, but its bootstrap interval holds 0
            (the runs do not tell which way the param moves along it).
        slope, slope_std: the exponent along ``axis`` and its bootstrap std.
        x: `m` scale values along ``axis`` (param space).
        curve, lower, upper: `m` the fitted best value and its ``level`` band, clipped to the
            param's bounds; ``lower <= curve <= upper``.
        clamped: `m` where the unclipped curve leaves the param's bounds.
        points_x, points_y, points_excess: the runs within ``near`` of the optimum at their scale,
            moved to the reference along the other axes; their relative loss excess.
        largest: the largest observed value along ``axis`` (beyond it: extrapolation).
        proposal: ``(scale, value, clamped)`` at the target, or None without a target.
    """

    param: str
    axis: str
    transform: str
    determined: bool
    notes: tuple[str, ...]
    uncertain: bool
    slope: float
    slope_std: float
    x: np.ndarray
    curve: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    clamped: np.ndarray
    points_x: np.ndarray
    points_y: np.ndarray
    points_excess: np.ndarray
    largest: float
    proposal: tuple[float, float, bool] | None


def bounds(param: Any) -> tuple[float, float]:
    """A param's bounds in its param space (-inf/inf where it has none)."""
    lo, hi = getattr(param, "min", None), getattr(param, "max", None)
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


def target_log_scales(law: "ScalingLaw", target: Mapping[str, float] | None) -> np.ndarray | None:  # noqa: F821
    """The target's natural-log scales in the space's scaling order, or None without a target."""
    if target is None:
        return None
    missing = [s for s in law.space.scaling if s not in target]
    if missing:
        raise ValueError(f"target is missing scaling value(s) {missing}; give all of {list(law.space.scaling)}")
    return np.log([float(target[s]) for s in law.space.scaling])


def default_near(excess: np.ndarray) -> float:
    """2%, widened up to 10% until at least 8 runs are within it."""
    return min(max(0.02, float(np.sort(excess)[min(7, len(excess) - 1)]) * 1.0001), 0.10)


def relation_curves(law: "ScalingLaw", *, target: Mapping[str, float] | None = None,  # noqa: F821
                    level: float = 0.9, near: float | None = None, n: int = 200) -> list[list[RelationCurve]]:
    """Each relation against each scaling axis: ``out[i][a]`` is param ``i`` of ``law.relations``
    against axis ``a`` of ``law.space.scaling``.

    Args:
        law: the fitted scaling law.
        target: scaling values to extrapolate to; the other axes are held there (else at their
            largest observed value), and the x range reaches it.
        level: coverage of the band.
        near: show runs within this relative loss excess of the optimum (default: :func:`default_near`).
        n: points along each curve.
    """
    ev = law.evidence
    x_obs = ev.log_scales
    x_tgt = target_log_scales(law, target)
    ref = x_tgt if x_tgt is not None else x_obs.max(axis=0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    keep = ev.excess < (default_near(ev.excess) if near is None else near)
    out = []
    for i, name in enumerate(law.relations):
        rel = law.relations[name]
        untransform = law.space[name].untransform
        lo_b, hi_b = bounds(law.space[name])
        slopes = np.asarray(rel.slopes)
        row = []
        for a, axis in enumerate(law.space.scaling):
            first, largest = x_obs[:, a].min(), x_obs[:, a].max()
            hi = max(largest, ref[a]) if x_tgt is not None else largest
            grid = np.linspace(first, hi + 0.05 * (hi - first), n)
            X = np.tile(ref, (n, 1))
            X[:, a] = grid
            mean, std = rel(X)
            held = axis in rel.held
            if held:  # a constant, not a measurement: no band along this axis
                std = np.zeros_like(std)
            raw = untransform(mean)
            lower, curve, upper = (np.clip(untransform(v), lo_b, hi_b) for v in (mean - z * std, mean, mean + z * std))
            others = [b for b in range(len(law.space.scaling)) if b != a]
            moved = ev.values[keep, i] + (ref[others] - x_obs[keep][:, others]) @ slopes[others]
            proposal = None
            if x_tgt is not None:
                m = float(untransform(rel(ref[None, :])[0])[0])
                proposal = (float(math.exp(ref[a])), float(np.clip(m, lo_b, hi_b)), not lo_b <= m <= hi_b)
            row.append(RelationCurve(
                param=name, axis=axis, transform=rel.transform, determined=not held,
                notes=tuple(rel.notes) if held else (), uncertain=axis in rel.uncertain,
                slope=float(rel.slopes[a]), slope_std=float(rel.slope_std[a]), x=np.exp(grid),
                curve=curve, lower=np.minimum(lower, curve), upper=np.maximum(upper, curve),
                clamped=(raw < lo_b) | (raw > hi_b), points_x=np.exp(x_obs[keep, a]),
                points_y=np.clip(untransform(moved), lo_b, hi_b), points_excess=ev.excess[keep],
                largest=float(math.exp(largest)), proposal=proposal,
            ))
        out.append(row)
    return out
