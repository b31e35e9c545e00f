"""The experiment report: PNG figures and one self-contained HTML page (images embedded).

``write_report(tuner, folder)`` writes

* ``front.png``: loss against cost of every trial, the Pareto front, and the fitted loss law (the
  predicted compute-optimal loss, with its band, extrapolated beyond the largest trial);
* ``relations.png``: each scaling relation (best value of a param against the scaling axes) with
  the points behind it and its extrapolation band (from :mod:`carbs_like.scaling.plots`);
* ``history.png``: the search over time: loss of each trial with the best so far, and cost;
* ``report.html``: the figures, the best configs, the front, the fitted relations, the proposal.

matplotlib is imported here only; the rest of carbs_like does not need it.
"""

from __future__ import annotations

import base64
import html
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .scaling import Prediction, ScalingLaw

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .tuner import Tuner

__all__ = ["figure_front", "figure_history", "write_report"]

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "figure.dpi": 100,
}
_FRONT_COLOR = "#d62728"
_LAW_COLOR = "#1f77b4"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------------ figures -------------
def figure_front(tuner: "Tuner", *, law_curve: "pd.DataFrame | None" = None, cost_label: str = "cost",
                 law_at_front: "pd.DataFrame | None" = None, loss_label: str = "loss") -> "Figure":
    """Loss against cost: trials coloured by the first scaling axis, failures, front, loss law.

    Args:
        tuner: the tuner whose observations to plot.
        law_curve: optional DataFrame with columns ``cost``, ``loss``, ``lo``, ``hi``: the fitted
            law's predicted compute-optimal loss and its band.
        cost_label: the x-axis label (the unit of cost).
        law_at_front: optional DataFrame with columns ``cost``, ``loss``: the law's best loss at the
            scaling values of each front trial, drawn at that trial's cost.
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    df = tuner.observations()
    ok, bad = df[df["status"] == "ok"], df[df["status"] != "ok"]
    front = tuner.pareto_front()
    axis = tuner.space.scaling[0] if tuner.space.scaling else None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        if axis is not None and len(ok):
            values = ok[axis].astype(float).to_numpy()
            norm = LogNorm(values.min(), max(values.max(), values.min() * 1.0001))
            sc = ax.scatter(ok["cost"], ok["loss"], c=values, norm=norm, cmap="viridis", s=22,
                            edgecolor="white", linewidth=0.4, zorder=3, label="trial")
            fig.colorbar(sc, ax=ax, pad=0.02).set_label(axis)
        elif len(ok):
            ax.scatter(ok["cost"], ok["loss"], s=22, color="0.4", zorder=3, label="trial")
        if len(front):
            xs, ys = _front_steps(front["cost"].to_numpy(float), front["loss"].to_numpy(float))
            ax.plot(xs, ys, color=_FRONT_COLOR, lw=1.5, zorder=4, label=f"Pareto front ({len(front)})")
            ax.scatter(front["cost"], front["loss"], s=40, facecolor="none", edgecolor=_FRONT_COLOR,
                       linewidth=1.2, zorder=5)
        if law_curve is not None and len(law_curve):
            ax.plot(law_curve["cost"], law_curve["loss"], color=_LAW_COLOR, lw=1.5, ls="--", zorder=2,
                    label="fitted loss law")
            ax.fill_between(law_curve["cost"], law_curve["lo"], law_curve["hi"], color=_LAW_COLOR, alpha=0.15,
                            lw=0, zorder=1, label="law band")
            ax.axvline(float(df["cost"].max()), color="0.5", lw=0.8, ls=":", zorder=1,
                       label="costliest trial")
        if law_at_front is not None and len(law_at_front):
            ax.scatter(law_at_front["cost"], law_at_front["loss"], marker="x", s=22, color=_LAW_COLOR,
                       linewidth=1.0, zorder=4, label="law at the front's sizes")
        ax.set_xscale("log")
        _set_loss_limits(ax, ok, law_curve)
        if len(bad):
            top = ax.get_ylim()[1] - 0.3 * (ax.get_ylim()[1] - float(ok["loss"].max()) if len(ok) else 0.0)
            ax.scatter(bad["cost"], np.full(len(bad), top), marker="x", color="0.35", s=18,
                       zorder=6, label=f"failed ({len(bad)}; no loss)")
        ax.set_xlabel(cost_label)
        ax.set_ylabel(loss_label)
        ax.set_title("Loss against cost")
        ax.legend(loc="upper right", frameon=False)
        fig.tight_layout()
    return fig


def _set_loss_limits(ax: Any, ok: "pd.DataFrame", law_curve: "pd.DataFrame | None") -> None:
    """Show the interesting range: from below the best loss to the 90th percentile."""
    if not len(ok):
        return
    losses = ok["loss"].to_numpy(float)
    lo = losses.min()
    if law_curve is not None and len(law_curve):
        lo = min(lo, float(np.nanmin(law_curve["loss"])))  # the band may run off the axis
    hi = losses.max()  # every trial shows; failed ones are drawn on a band above it
    pad = 0.06 * max(hi - lo, 1e-9)
    ax.set_ylim(lo - pad, hi + 2.5 * pad)


def figure_verify(verify: Mapping[str, Any], *, loss_label: str = "loss") -> "Figure":
    """Predicted vs measured at the target: the proposal's predicted loss and band, and each
    verify run's measured loss (a failed run is marked at the top)."""
    plt = _pyplot()
    runs = list(verify.get("runs", []))
    band = verify.get("predicted_band") or [None, None]
    pred = verify.get("predicted_loss")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        xs = np.arange(len(runs))
        if band[0] is not None:
            ax.axhspan(band[0], band[1], color=_LAW_COLOR, alpha=0.15, lw=0, label="predicted band")
        if pred is not None and math.isfinite(pred):
            ax.axhline(pred, color=_LAW_COLOR, ls="--", lw=1.3, label=f"predicted {pred:.4f}")
        measured = [r.get("loss") for r in runs]
        ok = [i for i, v in enumerate(measured) if v is not None]
        colors = [_FRONT_COLOR if r["label"].startswith("proposal") else "0.3" for r in runs]
        ax.scatter(xs[ok], [measured[i] for i in ok], c=[colors[i] for i in ok], s=40, zorder=4,
                   label="measured (red: the proposal)")
        for i in ok:
            ax.annotate(f"{measured[i]:.4f}", (xs[i], measured[i]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)
        failed = [i for i, v in enumerate(measured) if v is None]
        if failed:
            ax.scatter(xs[failed], np.full(len(failed), ax.get_ylim()[1]), marker="x", color="0.35",
                       label="failed")
        ax.set_xticks(xs, [r["label"] for r in runs], rotation=20, fontsize=8)
        ax.set_ylabel(loss_label)
        target = ", ".join(f"{k}={v:.3g}" for k, v in verify.get("target", {}).items())
        ax.set_title(f"Predicted vs measured at the target ({target})", fontsize=10)
        ax.legend(loc="best", frameon=False, fontsize=8)
        fig.tight_layout()
    return fig


def _front_steps(cost: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The front as a staircase: best loss at cost <= c (points sorted by cost)."""
    order = np.argsort(cost)
    c, l = cost[order], loss[order]
    xs = np.repeat(c, 2)[1:]
    ys = np.repeat(l, 2)[:-1]
    return xs, ys


def figure_history(tuner: "Tuner", *, loss_label: str = "loss") -> "Figure":
    """The search over trials: each trial's loss with the best so far, and each trial's cost."""
    plt = _pyplot()
    df = tuner.observations().reset_index(drop=True)  # in order of completion
    idx = np.arange(1, len(df) + 1)
    ok = (df["status"] == "ok").to_numpy()
    loss = df["loss"].to_numpy(float)
    best = np.fmin.accumulate(np.where(ok, loss, np.inf))
    best[~np.isfinite(best)] = np.nan
    with plt.rc_context(_STYLE):
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.0, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        a1.scatter(idx[ok], loss[ok], s=16, color="0.45", zorder=3, label="trial")
        a1.step(idx, best, where="post", color=_FRONT_COLOR, lw=1.5, zorder=4, label="best so far")
        if ok.sum() >= 2:
            lo, hi = np.nanmin(loss), float(np.nanmax(loss[ok]))
            a1.set_ylim(lo - 0.05 * (hi - lo), hi + 0.15 * (hi - lo))
        if (~ok).any():
            top = float(np.nanmax(loss[ok])) + 0.08 * (np.nanmax(loss[ok]) - np.nanmin(loss)) if ok.sum() >= 2 else 1.0
            a1.scatter(idx[~ok], np.full((~ok).sum(), top), marker="x",
                       color="0.35", s=18, zorder=5, label="failed (no loss)")
        a1.set_ylabel(loss_label)
        a1.set_title("Search history")
        a1.legend(loc="upper right", frameon=False)
        cost = df["cost"].to_numpy(float)
        a2.bar(idx, cost, color=np.where(ok, "#7f9fbf", "0.7"), width=0.8)
        a2.set_yscale("log")
        a2.set_ylabel("cost per trial")
        a2.set_xlabel("trial (in order of completion)")
        twin = a2.twinx()
        twin.plot(idx, np.cumsum(cost), color="0.2", lw=1.2)
        twin.set_ylabel("total cost")
        twin.spines["right"].set_visible(True)
        twin.grid(False)
        fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ the scaling law -----
def _fit_law(tuner: "Tuner", n_bootstrap: int) -> tuple[ScalingLaw | None, str | None]:
    """The tuner's scaling law, or None and why not (too few trials, no scaling axes)."""
    try:
        return ScalingLaw.fit(tuner, n_bootstrap=n_bootstrap), None
    except ValueError as e:  # too few observations, no scaling axes: the law says why
        return None, str(e)


def _law_curve(law: ScalingLaw, tuner: "Tuner", *, n: int = 40, beyond: float = 10.0) -> "pd.DataFrame | None":
    """Predicted compute-optimal loss from the cheapest trial's cost to ``beyond`` x the largest."""
    import pandas as pd

    costs = tuner.observations()["cost"].to_numpy(float)
    if not len(costs):
        return None
    grid = np.geomspace(np.median(costs) / 3.0, costs.max() * beyond, n)
    rows = []
    for c in grid:
        try:
            pred = law.predict(cost=float(c))
        except ValueError:
            continue
        loss, (lo, hi) = pred.loss, pred.loss_interval
        if math.isfinite(loss):
            rows.append({"cost": c, "loss": loss, "lo": lo, "hi": hi})
    return pd.DataFrame(rows) if rows else None


def _law_at_front(law: ScalingLaw, tuner: "Tuner") -> "pd.DataFrame | None":
    """The loss law at the scaling values of each front trial, at that trial's cost."""
    import pandas as pd

    front = tuner.pareto_front()
    axes = list(tuner.space.scaling)
    if not len(front) or not axes:
        return None
    x = np.log(front[axes].to_numpy(float))
    return pd.DataFrame({"cost": front["cost"].to_numpy(float), "loss": law.loss_law(x)})


def _relations_figure(law: ScalingLaw, target: Mapping[str, float] | None) -> "Figure | None":
    """The relations figure, or None when the law has no numeric relation to draw (every
    non-scaling param is a ChoiceParam)."""
    if not law.relations:
        return None
    from .scaling.plots import plot_relations

    return plot_relations(law, target=dict(target) if target else None)


# ------------------------------------------------------------------------ HTML ----------------
def write_report(
    tuner: "Tuner",
    folder: str | Path,
    *,
    title: str = "carbs-like report",
    law: ScalingLaw | None = None,
    proposal: Prediction | None = None,
    target: Mapping[str, float] | None = None,
    verify: Mapping[str, Any] | None = None,
    n_bootstrap: int = 32,
    cost_label: str = "cost",
    loss_label: str = "loss",
) -> Path:
    """Write the figures and ``report.html`` into ``folder``; returns the HTML path.

    Args:
        tuner: the tuner with the observations to report.
        folder: where to write (created if needed).
        title: the page title.
        law: the fitted scaling law (default: fitted here, with ``n_bootstrap`` refits).
        target: scaling values of a proposal, marked on the relations.
        proposal: optional prediction (``law.predict(...)``) to show.
        verify: optional results of ``carbs-like verify`` (``verify.json``).
        n_bootstrap: refits behind the law's bands when the law is fitted here.
        cost_label: the cost axis label (its unit).
        loss_label: the loss axis label (its unit, e.g. ``"loss (nats/byte)"``).

    Every figure is saved as PNG (200 dpi, embedded in the page) and SVG beside it.
    """
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    why = None
    if law is None:
        law, why = _fit_law(tuner, n_bootstrap) if len(tuner.observations()) else (None, "no observations yet")
    figures: list[tuple[str, str, Path]] = []

    def save(fig: "Figure", name: str, caption: str) -> None:
        path = folder / name
        fig.savefig(path, dpi=200, bbox_inches="tight")
        fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
        plt.close(fig)
        figures.append((name, caption, path))

    curve = at_front = None
    if law is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            curve = _law_curve(law, tuner)
            at_front = _law_at_front(law, tuner)
    if verify and verify.get("runs"):
        save(figure_verify(verify, loss_label=loss_label), "verify.png",
             "Predicted vs measured at the target size (no trial was this large): the law's predicted "
             "loss for the proposal and its band, and the loss each verify run measured there.")
    save(figure_front(tuner, law_curve=curve, cost_label=cost_label, law_at_front=at_front,
                      loss_label=loss_label), "front.png",
         "Loss against cost of every trial (colour: model size). Red: the Pareto front. Blue dashed: "
         "the fitted loss law's predicted compute-optimal loss with its band (each budget split between "
         "the scaling axes as the law prefers, near the splits the trials tried), extrapolated 10x beyond "
         "the most expensive trial (dotted line). Blue crosses: the law's best loss at the sizes of the "
         "front's trials; the gap down to the dashed line is what the law expects from splitting the "
         "same cost differently (e.g. more tokens per parameter).")
    if law is not None:
        fig = _relations_figure(law, target)
        if fig is not None:
            save(fig, "relations.png", "Scaling relations: the best value of each param against the scaling "
                 "axes, the points behind each fit, and the extrapolation band.")
    save(figure_history(tuner, loss_label=loss_label), "history.png",
         "The search over time: each trial's loss with the best so far (top), and each trial's cost "
         "with the running total (bottom).")
    page = _html(tuner, title=title, figures=figures, law=law, why=why, proposal=proposal, verify=verify)
    out = folder / "report.html"
    out.write_text(page)
    return out


def _html(tuner: "Tuner", *, title: str, figures: Sequence[tuple[str, str, Path]], law: ScalingLaw | None, why: str | None,
          proposal: Prediction | None, verify: Mapping[str, Any] | None) -> str:
    df = tuner.observations()
    ok = df[df["status"] == "ok"]
    names = tuner.space.names
    parts = [f"<h1>{html.escape(title)}</h1>"]
    summary = (f"{len(df)} trials ({len(ok)} ok, {len(df) - len(ok)} failed), total cost "
               f"{df['cost'].sum():.4g}, {len(tuner.pareto_front())} on the front")
    if len(ok):
        best = ok.loc[ok["loss"].idxmin()]
        summary += f"; best loss {best['loss']:.4f} (trial {int(best['trial_id'])})"
    parts.append(f"<p class='summary'>{html.escape(summary)}. Scaling axes: "
                 f"{html.escape(', '.join(tuner.space.scaling) or 'none')}.</p>")
    for name, caption, path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if proposal is not None:
        parts.append("<h2>Proposal</h2>" + _html_table(proposal.rows()))
        parts.extend(f"<p class='note'>Note: {html.escape(n)}</p>" for n in proposal.notes)
    if verify:
        parts.append("<h2>Predicted vs measured at the target</h2>" + _verify_html(verify))
    if law is not None:
        parts.append("<h2>Fitted scaling relations</h2>" + _df_html(law.table()))
    elif why:
        parts.append(f"<p><em>No scaling law: {html.escape(why)}</em></p>")
    cols = ["trial_id", *names, "loss", "cost"]
    parts.append("<h2>Best configs</h2>" + _df_html(ok.sort_values("loss").head(10)[cols]))
    parts.append("<h2>Pareto front</h2>" + _df_html(tuner.pareto_front()))
    return _PAGE.format(title=html.escape(title), body="\n".join(parts))


def _verify_html(verify: Mapping[str, Any]) -> str:
    rows = [{"run": r["label"], **{k: r["config"].get(k) for k in verify.get("params", [])},
             "loss": r.get("loss"), "cost": r.get("cost")} for r in verify.get("runs", [])]
    note = html.escape(str(verify.get("verdict", "")))
    return f"<p>{note}</p>" + _html_table(rows)


def _df_html(df: "pd.DataFrame") -> str:
    return _html_table(df.to_dict("records"))


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"{v[0]:.3g} .. {v[1]:.3g}"
    return str(v)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 980px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.9em; color: #555; }}
table {{ border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 0.25em 0.7em; text-align: right; border-bottom: 1px solid #eee; }}
th {{ background: #f6f6f6; }} .summary {{ font-size: 1.05em; }}
</style></head>
<body>
{body}
</body></html>
"""
