"""``carbs-like export``: every trial of an experiment as CSV or versioned JSON.

Every trial the tuner knows, asked or added, in id order: its config, its status (``ok``,
``failed``, ``pending`` while it runs, ``forgotten`` when it died without reporting), the loss
and cost of its observation, how the tuner chose it (``trial_metadata``) and what the trainable
reported besides (``metadata``). The experiment is only read (``Tuner.read``), so an export works
while a search is writing the journal.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .._io import dumps, write_bytes_atomic
from ..tuner import Tuner

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "export_csv", "export_json", "trial_rows", "write_export"]

EXPORT_FORMAT = "carbs_like.export"
EXPORT_VERSION = 1


def trial_rows(tuner: Tuner) -> list[dict[str, Any]]:
    """One record per trial, in id order: ``trial_id``, ``status``, ``config``, ``loss`` (None
    unless ok), ``cost`` (None until observed), ``trial_metadata``, ``metadata``."""
    observed = {o.trial_id: o for o in tuner.observed}
    pending = {t.id for t in tuner.pending}
    rows = []
    for trial in tuner.trials:
        obs = observed.get(trial.id)
        if obs is not None:
            status = obs.status
        else:
            status = "pending" if trial.id in pending else "forgotten"
        rows.append({
            "trial_id": trial.id,
            "status": status,
            "config": dict(trial.config),
            "loss": None if obs is None or obs.failed else obs.loss,
            "cost": None if obs is None else obs.cost,
            "trial_metadata": dict(trial.metadata),
            "metadata": {} if obs is None else dict(obs.metadata),
        })
    return rows


def export_json(tuner: Tuner) -> str:
    """The trials as versioned JSON: ``{"format", "version", "params", "scaling", "trials"}``."""
    data = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "params": list(tuner.space.names),
            "scaling": list(tuner.space.scaling), "trials": trial_rows(tuner)}
    return dumps(data, indent=1) + "\n"


def export_csv(tuner: Tuner) -> str:
    """The trials as CSV: ``trial_id, status``, a column per param, ``loss, cost``, and the two
    metadata objects as JSON text. Empty cells are missing values."""
    names = list(tuner.space.names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial_id", "status", *names, "loss", "cost", "trial_metadata", "metadata"])
    for row in trial_rows(tuner):
        writer.writerow([
            row["trial_id"], row["status"], *(row["config"][n] for n in names),
            "" if row["loss"] is None else repr(row["loss"]), "" if row["cost"] is None else repr(row["cost"]),
            json.dumps(row["trial_metadata"], sort_keys=True), json.dumps(row["metadata"], sort_keys=True),
        ])
    return buf.getvalue()


def write_export(tuner: Tuner, *, as_json: bool, output: Path | None) -> str | None:
    """The export text (returned when ``output`` is None), or written to ``output`` atomically."""
    text = export_json(tuner) if as_json else export_csv(tuner)
    if output is None:
        return text
    write_bytes_atomic(output, text.encode("utf-8"))
    return None
