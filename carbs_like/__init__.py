"""carbs_like: cost-aware Bayesian hyperparameter search that learns how the best
hyperparameters move with scale, and proposes them for models larger than any it trained.

The public API is re-exported here; everything else is private. Heavy pieces (BoTorch, pandas,
Ray, matplotlib) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .space import ChoiceParam, LinearParam, LogitParam, LogParam, Param, SearchSpace
from .trial import Observation, Trial

if TYPE_CHECKING:
    from .journal import JournalError, JournalLockedError
    from .scaling import ScalingLaw
    from .tuner import Tuner, TunerSettings

__version__ = "0.1.0"

__all__ = [
    "ChoiceParam",
    "JournalError",
    "JournalLockedError",
    "LinearParam",
    "LogParam",
    "LogitParam",
    "Observation",
    "Param",
    "ScalingLaw",
    "SearchSpace",
    "Trial",
    "Tuner",
    "TunerSettings",
    "__version__",
]

_LAZY = {
    "Tuner": ".tuner",
    "TunerSettings": ".tuner",
    "ScalingLaw": ".scaling",
    "JournalError": ".journal",
    "JournalLockedError": ".journal",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'carbs_like' has no attribute {name!r}")
