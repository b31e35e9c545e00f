"""Bookkeeping for the Ray Tune searcher: what one Ray trial reported, what it cost, how it ended.

Plain functions and a small record, no Ray import: the searcher and the scheduler use them. Ray
flattens results (``{"config": {"lr": 1e-3}}`` arrives as ``{"config/lr": 1e-3}``), so configs are
recovered from either form.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..trial import Observation, Trial

__all__ = ["CatchUp", "LiveTrial", "catch_up", "config_from_result", "flat_items", "resource_units"]


@dataclass
class LiveTrial:
    """A Ray trial the searcher is waiting on (mutable: it follows the trial's results).

    Attributes:
        tuner_id: the tuner's id of the trial, or None for a trial the searcher did not suggest
            (a restarted trial with a new Ray id); it is imported with ``Tuner.add`` when it ends.
        config: the trial's config, one key per param.
        started: wall-clock time (``time.time()``) when the searcher handed the trial out.
        loss: the last reported value of the metric (as reported, before any sign flip), if any.
        cost: the last reported value of the cost metric, if any.
        time_total_s: Ray's ``time_total_s`` of the last result, if any.
        resources: the trial's resources (``{"CPU": 1, "GPU": 0.5}``), if known.
        truncated: the scheduler stopped the trial early.
        failure: how its last error came about, as the scheduler saw it: ``"node"`` (the node it
            ran on died or was lost), ``"error"`` (the trainable raised, ran out of memory), or
            None (no error seen, or no scheduler looking).
    """

    tuner_id: int | None
    config: dict[str, Any]
    started: float = field(default_factory=time.time)
    loss: float | None = None
    cost: float | None = None
    time_total_s: float | None = None
    resources: dict[str, float] | None = None
    truncated: bool = False
    failure: str | None = None

    def update(self, result: Mapping[str, Any], *, metric: str, cost: str) -> None:
        """Follow a (flattened) Ray result; keys it lacks keep their last value."""
        if _is_number(result.get(metric)):
            self.loss = float(result[metric])
        if _is_number(result.get(cost)):
            self.cost = float(result[cost])
        if _is_number(result.get("time_total_s")):
            self.time_total_s = float(result["time_total_s"])

    def spent(self, default_resources: Mapping[str, float] | None) -> tuple[float, str]:
        """The cost spent so far and where it comes from.

        The reported cost metric if there is one; else ``time_total_s`` times the trial's GPUs
        (or CPUs when it has none); else the wall-clock time since it was handed out, times the
        same units (a trial that died before its first result).

        Returns:
            ``(cost, source)`` with cost > 0 and source one of ``"reported"``,
            ``"time_total_s"``, ``"wall_clock"``.
        """
        if self.cost is not None and math.isfinite(self.cost) and self.cost > 0:
            return self.cost, "reported"
        units = resource_units(self.resources or default_resources)
        if self.time_total_s is not None and self.time_total_s > 0:
            return self.time_total_s * units, "time_total_s"
        return max(time.time() - self.started, 1e-3) * units, "wall_clock"

    def to_dict(self) -> dict[str, Any]:
        """JSON data; a NaN or infinite loss (a diverging run) is kept as the string "nan"/"inf"."""
        return {
            "tuner_id": self.tuner_id, "config": dict(self.config), "started": self.started,
            "loss": _json_float(self.loss), "cost": _json_float(self.cost),
            "time_total_s": _json_float(self.time_total_s),
            "resources": self.resources, "truncated": self.truncated, "failure": self.failure,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LiveTrial":
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("loss", "cost", "time_total_s"):
            if isinstance(values.get(key), str):
                values[key] = float(values[key])
        return cls(**values)


def resource_units(resources: Mapping[str, float] | None) -> float:
    """How many devices a trial holds: its GPUs if any, else its CPUs (at least 1 when unknown)."""
    if not resources:
        return 1.0
    gpus = float(resources.get("GPU", resources.get("gpu", 0.0)) or 0.0)
    if gpus > 0:
        return gpus
    cpus = float(resources.get("CPU", resources.get("cpu", 1.0)) or 0.0)
    return cpus if cpus > 0 else 1.0


def config_from_result(result: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any] | None:
    """The params ``names`` of the trial that produced a Ray result, or None if it lacks any.

    Ray puts the trial's config into every result, as ``result["config"]`` or, flattened, as
    ``result["config/<name>"]``.
    """
    nested = result.get("config")
    config: dict[str, Any] = {}
    for name in names:
        if isinstance(nested, Mapping) and name in nested:
            config[name] = nested[name]
        elif f"config/{name}" in result:
            config[name] = result[f"config/{name}"]
        else:
            return None
    return config


@dataclass(frozen=True)
class CatchUp:
    """A searcher checkpoint brought up to date with its tuner's journal (see :func:`catch_up`).

    Attributes:
        live: the Ray trials still running (those the journal has told are moved to ``done``).
        done: Ray trial id -> tuner id of the trials the journal told after the checkpoint.
        ready: tuner ids to hand out next: the journal's pending trials no live trial holds.
        inbox: the checkpoint's queued results the journal has not applied yet.
        spent: cost the journal told after the checkpoint that the checkpoint had not counted.
        suggested: trials the journal shows handed out after the checkpoint and told.
    """

    live: dict[str, LiveTrial]
    done: dict[str, int]
    ready: list[int]
    inbox: list[dict[str, Any]]
    spent: float
    suggested: int


def catch_up(*, journaled: Sequence["Observation"], saved: Sequence["Observation"],
             pending: Sequence["Trial"], live: Mapping[str, LiveTrial],
             inbox: Sequence[Mapping[str, Any]]) -> CatchUp:
    """Bring a searcher checkpoint (``saved`` observations, ``live`` trials, queued ``inbox``) up to
    the journal (``journaled`` observations, ``pending`` trials), which may hold events after it:
    the journal is the truth, so no trial it has told is told again, and a trial asked after the
    checkpoint is handed out again rather than lost."""
    known = {o.trial_id for o in saved}
    new = [o for o in journaled if o.trial_id not in known]
    told = {o.trial_id for o in journaled}
    pending_ids = {t.id for t in pending}
    by_ray_id = {o.metadata.get("ray_trial_id"): o.trial_id for o in new if "ray_trial_id" in o.metadata}
    queued = {op.get("tag") or (op.get("metadata") or {}).get("ray_trial_id") for op in inbox}
    still, done = {}, {}
    for rid, trial in live.items():
        if rid in by_ray_id or (trial.tuner_id is not None and trial.tuner_id in told):
            done[rid] = by_ray_id.get(rid, trial.tuner_id)
            continue
        if trial.tuner_id is not None and trial.tuner_id not in pending_ids:
            trial.tuner_id = None  # forgotten after the checkpoint: recorded with add when it ends
        still[rid] = trial
    held = {t.tuner_id for t in still.values()}
    keep = [dict(op) for op in inbox if (op["op"] == "add" and op.get("tag") not in by_ray_id)
            or (op["op"] != "add" and op["tuner_id"] in pending_ids)]
    counted = [o for o in new if o.metadata.get("ray_trial_id") not in queued]
    return CatchUp(
        live=still, done=done, ready=sorted(pending_ids - held), inbox=keep,
        spent=float(sum(o.cost for o in counted)),
        suggested=sum(o.metadata.get("ray_trial_id") not in live for o in counted),
    )


def flat_items(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(key, value)`` of a nested dict's leaves, the keys joined with "/" as Ray flattens them."""
    items: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, Mapping):
            items.extend(flat_items(value, f"{prefix}{key}/"))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _json_float(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else repr(float(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
