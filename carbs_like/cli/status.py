"""What ``carbs-like status`` prints: the trials, the front, the compute spent against the budget,
and the scaling law's proposal for the target with the width of its intervals."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tuner import Tuner
from .experiment import Experiment, UsageError
from .run import fmt, short
from .verify import N_BOOTSTRAP, demo_target, fit_law, format_prediction, predict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["proposal_text", "status_text"]


def proposal_text(tuner: Tuner, experiment: Experiment | None, *, n_bootstrap: int = N_BOOTSTRAP) -> str:
    """The scaling law's proposal for the experiment's target (``--target``), else for 10x the largest
    run on every scaling axis, with its intervals; or why there is none yet."""
    target = (experiment.settings or {}).get("target") if experiment is not None else None
    where = "the target" if target else "10x the largest run"
    if not tuner.n_observations:
        return f"proposal for {where}: not determined yet (no finished trial)"
    target = target or demo_target(tuner, factor=10.0)
    size = ", ".join(f"{k}={v:.3g}" for k, v in target.items())
    try:
        with warnings.catch_warnings():  # a clamped value is in the proposal's notes
            warnings.simplefilter("ignore", UserWarning)
            pred = predict(fit_law(tuner, n_bootstrap=n_bootstrap), scaling=target)
    except UsageError as e:
        return f"proposal for {where} ({size}): not determined yet: {e}"
    widths = [f"{name} x{hi / lo:.2f}" for name, (lo, hi) in pred.intervals.items()
              if lo is not None and hi is not None and lo > 0 and name not in target]
    head = f"proposal for {where} ({size}), {pred.level:.0%} intervals"
    return "\n".join([head + (f" (widths hi/lo: {', '.join(widths)})" if widths else "") + ":",
                      format_prediction(pred, tuner)])


def status_text(tuner: Tuner, experiment: Experiment | None, folder: Path, *, all_trials: bool = False) -> str:
    """The status table; ``experiment`` None for a bare journal (a Ray Tune search's)."""
    df = tuner.observations()
    ok = df[df["status"] == "ok"]
    what = "a journaled search" if experiment is None else experiment.trainable
    limits = "" if experiment is None else f", limit {experiment.trials} trials"
    spent = float(df["cost"].sum())
    budget = (f" of the budget {experiment.budget:g} ({spent / experiment.budget:.0%})"
              if experiment is not None and experiment.budget else " (no budget set)")
    lines = [
        f"{folder}: {what}, {len(df)} trials ({len(ok)} ok, {len(df) - len(ok)} failed){limits}",
        f"compute spent {spent:.4g}{budget}; best loss "
        + (f"{ok['loss'].min():.4f} (trial {int(ok.loc[ok['loss'].idxmin(), 'trial_id'])})" if len(ok) else "-"),
        "",
        "front (lower loss for lower cost):",
        _table(tuner.pareto_front(), tuner.space.names),
    ]
    if len(df):
        shown = df if all_trials else df.tail(15)
        lines += ["", "trials" + ("" if all_trials else f" (last {len(shown)}; --all for every one)") + ":",
                  _table(shown, tuner.space.names)]
    return "\n".join(lines)


def _table(df: pd.DataFrame, names: Sequence[str]) -> str:
    if df.empty:
        return "  (none)"
    cols = ["trial_id", *names, "loss", "cost", "status"]
    def cell(col: str, v: Any) -> str:
        if isinstance(v, float) and math.isnan(v):
            return "-"
        return f"{v:.4f}" if col == "loss" else fmt(v)

    rows = [[cell(c, v) for c, v in zip(cols, r)] for r in df[cols].itertuples(index=False)]
    head = ["trial", *[short(n) for n in names], "loss", "cost", "status"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    out = ["  " + "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    out += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)
