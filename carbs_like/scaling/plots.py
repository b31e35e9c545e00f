"""Plots of a :class:`~carbs_like.scaling.ScalingLaw` (matplotlib, imported only here).

* :func:`plot_relations`: each relation against each scaling axis, with the near-optimal runs
  behind it and the extrapolation band out to a target scale;
* :func:`plot_loss`: the runs and their front of loss against cost, with the fitted loss law along
  the compute-optimal path and its band.

Both return a ``matplotlib.figure.Figure``; save it with ``fig.savefig("law.png", dpi=150)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .budget import compute_optimal
from .curves import default_near, relation_curves, target_log_scales

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The law arrives as an argument: this module never imports law.py, which imports this one lazily
# for ScalingLaw.plot_relations / plot_loss. Annotations say "ScalingLaw" (carbs_like.scaling.law).

__all__ = ["plot_loss", "plot_relations"]

_LINE = "#1f4e79"
_BAND = "#9ecae1"
_TARGET = "#c0392b"
_CLAMP = "#e67e22"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "plots need matplotlib: pip install 'carbs-like[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def _tidy_log_axis(axis, *, plain: bool = False) -> None:
    """Label a log axis at 1-2-5 steps only (matplotlib labels every minor tick of a short log
    axis, and their labels overlap); ``plain`` writes 0.002 or 20 rather than 2x10^-3 or 2x10^1."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if decades <= 2.0 else (1.0,), numticks=7))
    sci = LogFormatterSciNotation(labelOnlyBase=False)
    axis.set_major_formatter(FuncFormatter(lambda v, pos: f"{v:g}" if 1e-3 <= v < 1e4 else sci(v, pos))
                             if plain else sci)
    axis.set_minor_formatter(NullFormatter())


def plot_relations(law: "ScalingLaw", *, target: Mapping[str, float] | None = None, level: float = 0.9,  # noqa: F821
                   near: float | None = None) -> "Figure":
    """Each relation ``h*(s)`` against each scaling axis.

    A panel shows one param against one axis, the other axes held at the target (or at their
    largest observed value): the fitted power law, its ``level`` band (coefficient uncertainty,
    widening with extrapolation), and the runs whose fitted loss excess is below ``near``,
    moved along the other axes by the relation so that they share the panel's reference, coloured
    by their excess.

    Args:
        law: the fitted scaling law.
        target: scaling values to extrapolate to, e.g. ``{"n_params": 1e9, "tokens": 2e10}``.
        level: coverage of the band.
        near: show runs within this relative loss excess of the optimum at their scale (default:
            2%, widened up to 10% until at least 8 runs show).
    """
    plt = _pyplot()
    names = list(law.relations)
    axes_names = list(law.space.scaling)
    if not names:
        raise ValueError("this law has no numeric relations to plot (the space has no numeric non-scaling params)")
    ev = law.evidence
    x_tgt = target_log_scales(law, target)
    ref = x_tgt if x_tgt is not None else ev.log_scales.max(axis=0)
    if near is None:
        near = default_near(ev.excess)
    curves = relation_curves(law, target=target, level=level, near=near)
    fig, grid = plt.subplots(len(names), len(axes_names), figsize=(1.0 + 3.4 * len(axes_names), 0.8 + 2.6 * len(names)),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("viridis_r")
    scatter = None
    for i, name in enumerate(names):
        for a, axis in enumerate(axes_names):
            ax, c = grid[i, a], curves[i][a]
            if not c.determined:  # not determined: a constant, not a measurement; no band drawn
                ax.plot(c.x, c.curve, color=_LINE, lw=1.2, ls=":", label="held constant (not determined)")
            else:
                ax.fill_between(c.x, c.lower, c.upper, color=_BAND, alpha=0.55, lw=0,
                                label=f"{int(level * 100)}% band")
                ax.plot(c.x, c.curve, color=_LINE, lw=1.8, ls="--" if c.uncertain else "-",
                        label="fitted relation (sign not determined)" if c.uncertain else "fitted relation")
            if c.clamped.any():  # the relation leaves the param's bounds: drawn clamped, and said so
                ax.plot(c.x[c.clamped], c.curve[c.clamped], color=_CLAMP, lw=2.4,
                        label="clamped to the param's bound")
            scatter = ax.scatter(c.points_x, c.points_y, c=100 * c.points_excess,
                                 cmap=cmap, vmin=0, vmax=100 * near, s=16, edgecolor="k", linewidth=0.3,
                                 zorder=3, label=f"runs within {100 * near:.2g}% of optimum")
            ax.axvspan(c.largest, c.x[-1], color="0.93", zorder=0)
            if c.proposal is not None:
                ax.errorbar([c.proposal[0]], [c.proposal[1]], fmt="*", ms=11, color=_TARGET,
                            yerr=None, zorder=4, label="proposal")
            ax.set_xscale("log")
            _tidy_log_axis(ax.xaxis)
            if c.transform == "log":
                ax.set_yscale("log")
                _tidy_log_axis(ax.yaxis, plain=True)
            if not c.determined:  # the note goes to the half of the panel the held-constant line leaves free
                ax.autoscale_view()
                lo, hi = (ax.transScale + ax.transLimits).transform([(c.x[0], float(c.curve.min())), (c.x[0], float(c.curve.max()))])[:, 1]
                top = (lo + hi) / 2 < 0.5
                ax.text(0.03, 0.96 if top else 0.04, f"the runs do not determine how it moves\nalong {axis}: held constant",
                        transform=ax.transAxes, fontsize=7, color="0.25", va="top" if top else "bottom",
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5}, zorder=5)
            ax.set_title("exponent not determined by the runs" if not c.determined
                         else f"exponent {c.slope:+.3f} ± {c.slope_std:.3f}" + (": sign not determined" if c.uncertain else ""),
                         fontsize=9)
            ax.set_xlabel(axis)
            if a == 0:
                ax.set_ylabel(f"best {name}")
            ax.grid(True, which="major", alpha=0.25)
            ax.tick_params(labelsize=8)
    seen: dict[str, Any] = {}
    for ax in grid.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    handles, labels = list(seen.values()), list(seen)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    if scatter is not None:
        cb = fig.colorbar(scatter, ax=grid.ravel().tolist(), shrink=0.5, pad=0.02, aspect=30)
        cb.set_label("loss excess over optimum (%)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    held = ", ".join(f"{s}={math.exp(v):.3g}" for s, v in zip(axes_names, ref))
    fig.suptitle(f"Best value of each param against scale\n(other axes at {held}; shaded: extrapolation)",
                 fontsize=10)
    return fig


def plot_loss(law: "ScalingLaw", *, tuner: Any = None, target: Mapping[str, float] | None = None,  # noqa: F821
              level: float = 0.9) -> "Figure":
    """Loss against cost: the runs, their front, and the loss law along the compute-optimal path.

    Args:
        law: the fitted scaling law.
        tuner: the tuner the law came from; its runs and front are drawn (else only the law).
        target: scaling values of a proposal to mark, with its predicted loss band.
        level: coverage of the band.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    c_lo = c_hi = None
    if tuner is not None:
        obs = tuner.observations()
        ok = obs[obs["status"] == "ok"]
        ax.scatter(ok["cost"], ok["loss"], s=9, color="0.6", alpha=0.7, lw=0, label="runs")
        front = tuner.pareto_front()
        ax.step(front["cost"], front["loss"], where="post", color="k", lw=1.3, label="front")
        c_lo, c_hi = float(ok["cost"].min()), float(ok["cost"].max())
    else:
        lc = law.cost_law(law.evidence.log_scales)
        c_lo, c_hi = float(np.exp(lc.min())), float(np.exp(lc.max()))
    end = c_hi * 100
    if target is not None:
        p = law.predict(dict(target), level=level)
        end = max(end, p.cost * 1.5)
    costs = np.geomspace(c_lo, end, 60)
    X = np.stack([compute_optimal(c, loss_law=law.loss_law, cost_law=law.cost_law, observed=law.evidence.log_scales)[0]
                  for c in costs])
    mid = law.loss_law(X)
    lo, hi = law.loss_law.band(X, level=level)
    ax.fill_between(costs, lo, hi, color=_BAND, alpha=0.55, lw=0, label=f"{int(level * 100)}% band")
    E, A, al = law.loss_law.E, law.loss_law.A, law.loss_law.alpha
    terms = " + ".join(f"{a:.3g}/{s}^{b:.3f}" for s, a, b in zip(law.space.scaling, A, al))
    ax.plot(costs, mid, color=_LINE, lw=1.8, label=f"L = {E:.3f} + {terms}")
    ax.axvspan(c_hi, end, color="0.93", zorder=0)
    if target is not None:
        ax.errorbar([p.cost], [p.loss], yerr=[[p.loss - p.loss_interval[0]], [p.loss_interval[1] - p.loss]],
                    fmt="*", ms=11, color=_TARGET, capsize=3, zorder=4,
                    label="proposal: " + ", ".join(f"{s}={target[s]:.3g}" for s in law.space.scaling))
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cost")
    ax.set_ylabel("loss")
    ax.set_title("Loss front and fitted loss law (compute-optimal path)", fontsize=10)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7, frameon=False)
    return fig
