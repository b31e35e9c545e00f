"""Trial and Observation: the two small records the Tuner hands out and keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Observation", "Trial"]


@dataclass(frozen=True)
class Trial:
    """One run the tuner asked for (or that was imported with ``add``).

    Attributes:
        id: the tuner's id for this trial, unique within a tuner.
        config: a plain dict of param values, one key per param.
        metadata: what the tuner knows about how it chose this trial (e.g. ``{"source":
            "sobol"}`` or ``{"source": "acquisition", "predicted_loss": ...}``).
    """

    id: int
    config: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "config": dict(self.config), "metadata": dict(self.metadata)}


@dataclass(frozen=True)
class Observation:
    """A finished trial: its loss (None when it failed), its cost and its status.

    Attributes:
        trial_id: the id of the trial this observes.
        config: the trial's config.
        loss: the loss, or None for a failed trial.
        cost: the cost the trial spent (any positive unit: seconds, FLOPs, dollars).
        failed: True if the run diverged, ran out of memory or otherwise produced no loss.
        metadata: free-form data from ``tell``/``add`` (e.g. ``{"truncated": True}``).
    """

    trial_id: int
    config: dict[str, Any]
    loss: float | None
    cost: float
    failed: bool = False
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def status(self) -> str:
        return "failed" if self.failed else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "config": dict(self.config),
            "loss": self.loss,
            "cost": self.cost,
            "failed": self.failed,
            "metadata": dict(self.metadata),
        }
