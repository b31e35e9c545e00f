"""The records: Trial and Observation (what the Tuner hands out and keeps, in param space) and
ObservedData (the same observations as search-space tensors, what the models see)."""

from __future__ import annotations

import json
import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["ObservedData", "Observation", "Trial", "make_observation"]


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
        metadata: free-form data from ``tell``/``add`` (e.g. ``{"truncated": True}``). A failed
            run with ``{"failure": "node"}`` is *lost* (see :attr:`lost`).
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

    @property
    def lost(self) -> bool:
        """A failed run lost to its machine (``metadata["failure"] == "node"``: the node died or was
        preempted). It counts as a failure and its cost as spent, but it says nothing about its
        config, so the models (loss, cost, failure) leave it out."""
        return self.failed and self.metadata.get("failure") == "node"

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "config": dict(self.config),
            "loss": self.loss,
            "cost": self.cost,
            "failed": self.failed,
            "metadata": dict(self.metadata),
        }


def make_observation(
    trial_id: int,
    config: Mapping[str, Any],
    loss: Any,
    cost: Any,
    failed: Any = False,
    metadata: Any = None,
) -> Observation:
    """An :class:`Observation` from a caller's values, checked as ``Tuner.tell`` promises.

    A NaN or infinite loss is a failed run (with a warning unless ``failed`` says so already); a
    failed run has no loss.

    Raises:
        TypeError: ``failed`` is not a bool, the loss or cost is not a number, the metadata is not
            JSON data, or the loss is None for a run that did not fail.
        ValueError: the cost is not a positive finite number.
    """
    if not isinstance(failed, (bool, np.bool_)):
        raise TypeError(f"failed must be True or False, got {failed!r}")
    failed = bool(failed)
    if isinstance(cost, bool) or not isinstance(cost, numbers.Real):
        raise TypeError(f"cost must be a positive number, got {cost!r} ({type(cost).__name__})")
    cost = float(cost)
    if not (math.isfinite(cost) and cost > 0):
        raise ValueError(f"cost must be a positive finite number, got {cost!r} (report e.g. seconds or FLOPs)")
    if loss is None:
        if not failed:
            raise TypeError("loss is None but failed=False: pass the loss, or failed=True for a run that failed")
    elif isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise TypeError(f"loss must be a number (or None for a failed run), got {loss!r} ({type(loss).__name__})")
    else:
        loss = float(loss)
        if not math.isfinite(loss):
            if not failed:
                warnings.warn(
                    f"trial {trial_id}: loss is {loss}; recorded as a failed run (diverged)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            failed = True
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict of JSON data, got {type(metadata).__name__}")
    meta = dict(metadata or {})
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON data (str, numbers, lists, dicts): {e}") from None
    return Observation(
        trial_id=trial_id, config=dict(config), loss=None if failed else loss, cost=cost, failed=failed,
        metadata=meta,
    )


@dataclass(frozen=True)
class ObservedData:
    """Observations as float64 search-space tensors (what the surrogate, the acquisition and the
    scaling laws work on; no param names).

    Attributes:
        X: `n x d` search-space coordinates.
        loss: `n` losses (NaN where failed).
        cost: `n` positive costs.
        failed: `n` booleans.
    """

    X: Tensor
    loss: Tensor
    cost: Tensor
    failed: Tensor

    @property
    def ok(self) -> Tensor:
        return ~self.failed

    def __len__(self) -> int:
        return self.X.shape[0]
