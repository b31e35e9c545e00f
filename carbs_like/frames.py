"""pandas views of the observations: one row per run, and the loss-vs-cost front."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .acquisition import pareto_mask
from .trial import Observation

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["front_frame", "observations_frame"]


def observations_frame(observations: Sequence[Observation], names: Sequence[str]) -> "pd.DataFrame":
    """One row per observation: ``trial_id``, a column per param, ``loss``, ``cost``, ``status``."""
    import pandas as pd

    cols = ["trial_id", *names, "loss", "cost", "status"]
    rows = [
        {"trial_id": o.trial_id, **o.config, "loss": o.loss, "cost": o.cost, "status": o.status}
        for o in observations
    ]
    df = pd.DataFrame(rows, columns=cols)
    df["loss"] = df["loss"].astype(float)
    df["cost"] = df["cost"].astype(float)
    return df


def front_frame(df: "pd.DataFrame", keys: Sequence, names: Sequence[str]) -> "pd.DataFrame":
    """The rows of ``observations_frame`` on the front of lower loss against lower cost, sorted by
    cost; the runs of one config (same entry of ``keys``) grouped by their mean, with ``n_runs``."""
    import pandas as pd

    ok = df.assign(key=list(keys))[df["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=[*df.columns, "n_runs"])
    grouped = ok.groupby("key", sort=False).agg(
        {**{c: "first" for c in ["trial_id", *names, "status"]}, "loss": "mean", "cost": "mean"}
    )
    grouped["n_runs"] = ok.groupby("key", sort=False).size()
    grouped = grouped.reset_index(drop=True)
    mask = pareto_mask(torch.tensor(grouped["loss"].values), torch.tensor(grouped["cost"].values))
    front = grouped[mask.numpy()].sort_values(["cost", "loss"]).reset_index(drop=True)
    return front[["trial_id", *names, "loss", "cost", "status", "n_runs"]]
