"""carbs_like: cost-aware Bayesian hyperparameter search that learns how the best
hyperparameters move with scale, and proposes them for models larger than any it trained.

The public API is re-exported here (``__all__``); everything else is internal. The Tuner and the
scaling law (BoTorch, pandas) are imported when first used; Ray and matplotlib only by the
integrations that need them (``carbs_like.ray``, the report, the plots).
"""

import importlib as _importlib
import typing as _typing

from .space import ChoiceParam, LinearParam, LogitParam, LogParam, Param, SearchSpace
from .trial import Observation, Trial

if _typing.TYPE_CHECKING:
    from .journal import JournalError, JournalLockedError
    from .scaling import ScalingLaw
    from .settings import TunerSettings
    from .tuner import Tuner

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

# Public names imported on first use: name -> module.
_LAZY = {
    "JournalError": ".journal",
    "JournalLockedError": ".journal",
    "ScalingLaw": ".scaling",
    "Tuner": ".tuner",
    "TunerSettings": ".settings",
}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        return getattr(_importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'carbs_like' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
