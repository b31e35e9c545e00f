"""Checked decoding of what the tuner stores: its space, settings, trials, observations and the
dynamic state an ask leaves behind.

One set of checks serves every way a tuner is rebuilt: ``Tuner.from_state_dict`` (snapshots,
``Tuner.load``, the Ray searcher's state) and the replay of a journal (``Tuner.resume``). Each
function takes plain JSON data and a ``where`` (file, line, field) and raises a
:class:`~carbs_like._io.FormatError` naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from ._io import FormatError, is_int, is_real, require, require_int
from .settings import TunerSettings
from .space import SearchSpace
from .trial import Observation, Trial, make_observation

__all__ = [
    "DynamicState",
    "decode_config",
    "decode_dynamic_state",
    "decode_observation",
    "decode_queue",
    "decode_settings",
    "decode_space",
    "decode_trial",
    "encode_rng",
    "encode_settings",
]

# What an ask changes besides the trials: {"rng", "sobol_drawn", "next_id", "hyperparameters", "n_at_fit"}.
DynamicState = dict[str, Any]


# Settings of earlier versions that no longer exist: an old journal or checkpoint still loads.
# ``cost_band``: the acquisition's cost bands, replaced by the hypervolume improvement.
RETIRED_SETTINGS = frozenset({"cost_band"})


def encode_rng(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state as JSON data."""
    return json.loads(json.dumps(rng.bit_generator.state))


def encode_settings(settings: TunerSettings) -> dict[str, Any]:
    return asdict(settings)


def decode_space(data: Mapping[str, Any], where: str) -> SearchSpace:
    """The :class:`SearchSpace` in ``data["space"]``."""
    source = f"{where}: field 'space'"
    try:
        return SearchSpace.from_dict(require(data, "space", dict, where), source=source)
    except FormatError:
        raise
    except (TypeError, ValueError) as e:
        raise FormatError(str(e) if str(e).startswith(source) else f"{source}: {e}") from None


def decode_settings(data: Mapping[str, Any], where: str) -> TunerSettings:
    """The :class:`TunerSettings` in ``data["settings"]``; unknown keys are an error, except
    settings that were retired (``RETIRED_SETTINGS``), which are dropped."""
    settings = {k: v for k, v in require(data, "settings", dict, where).items() if k not in RETIRED_SETTINGS}
    known = {f.name for f in fields(TunerSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise FormatError(f"{where}: field 'settings' has unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return TunerSettings(**settings)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: field 'settings': {e}") from None


def decode_config(data: Mapping[str, Any], space: SearchSpace, where: str) -> dict[str, Any]:
    """``data["config"]``, checked against ``space`` (the canonical dict ``space.validate`` gives)."""
    config = require(data, "config", dict, where)
    try:
        return space.validate(config)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: field 'config': {e}") from None


def decode_queue(data: Mapping[str, Any], space: SearchSpace, where: str) -> list[dict[str, Any]]:
    """A checkpoint's ``queue`` of enqueued configs (absent in checkpoints made before enqueue)."""
    queue = data.get("queue", [])
    if not isinstance(queue, list):
        raise FormatError(f"{where}: field 'queue' must be a list of configs, got {type(queue).__name__}")
    return [decode_config({"config": c}, space, f"{where}: queue[{i}]") for i, c in enumerate(queue)]


def decode_trial(data: Any, space: SearchSpace, where: str) -> Trial:
    """A :class:`Trial` from ``Trial.to_dict()`` data, its config checked against ``space``."""
    if not isinstance(data, Mapping):
        raise FormatError(f"{where}: expected an object, got {type(data).__name__}")
    config = decode_config(data, space, where)
    metadata = dict(require(data, "metadata", dict, where))
    return Trial(id=require_int(data, "id", where), config=config, metadata=metadata)


def decode_observation(data: Any, space: SearchSpace, where: str) -> Observation:
    """An :class:`Observation` from ``Observation.to_dict()`` data, checked as ``tell`` checks."""
    if not isinstance(data, Mapping):
        raise FormatError(f"{where}: expected an object, got {type(data).__name__}")
    for key in ("trial_id", "config", "loss", "cost", "failed", "metadata"):
        if key not in data:
            raise FormatError(f"{where}: missing field {key!r}")
    config = require(data, "config", dict, where)
    try:
        config = space.validate(config)
        obs = make_observation(
            require_int(data, "trial_id", where), config, data["loss"], data["cost"], data["failed"],
            require(data, "metadata", dict, where),
        )
    except FormatError:
        raise
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: {e}") from None
    if obs.failed != data["failed"]:
        raise FormatError(f"{where}: field 'failed' is False but the loss is not finite")
    return obs


def decode_dynamic_state(state: Any, where: str) -> DynamicState:
    """Checked dynamic state: ``{"rng", "sobol_drawn", "next_id", "hyperparameters", "n_at_fit"}``."""
    if not isinstance(state, Mapping):
        raise FormatError(f"{where}: expected an object, got {type(state).__name__}")
    if "hyperparameters" not in state:
        raise FormatError(f"{where}: missing field 'hyperparameters'")
    return {
        "rng": _rng_state(require(state, "rng", dict, where), f"{where}.rng"),
        "sobol_drawn": require_int(state, "sobol_drawn", where),
        "next_id": require_int(state, "next_id", where),
        "hyperparameters": _hyperparameters(state["hyperparameters"], f"{where}.hyperparameters"),
        "n_at_fit": require_int(state, "n_at_fit", where),
    }


def decode_history(
    data: Mapping[str, Any], space: SearchSpace, next_id: int, where: str
) -> tuple[list[Trial], list[Observation], list[int]]:
    """A checkpoint's ``trials``, ``observations`` and ``pending`` ids, checked against each other:
    ids unique and below ``next_id``, each observation of a known trial and at most once, each
    pending id an unobserved trial."""
    trials: dict[int, Trial] = {}
    for i, t in enumerate(require(data, "trials", list, where)):
        trial = decode_trial(t, space, f"{where}: trials[{i}]")
        if trial.id in trials or trial.id >= next_id:
            raise FormatError(f"{where}: trials[{i}]: id {trial.id} is repeated or not below next_id")
        trials[trial.id] = trial
    observations: list[Observation] = []
    observed: set[int] = set()
    for i, o in enumerate(require(data, "observations", list, where)):
        obs = decode_observation(o, space, f"{where}: observations[{i}]")
        if obs.trial_id not in trials or obs.trial_id in observed:
            raise FormatError(f"{where}: observations[{i}]: trial_id {obs.trial_id} is not in 'trials' or repeated")
        observed.add(obs.trial_id)
        observations.append(obs)
    pending: list[int] = []
    for i, trial_id in enumerate(require(data, "pending", list, where)):
        if not is_int(trial_id) or trial_id not in trials or trial_id in observed or trial_id in pending:
            raise FormatError(f"{where}: pending[{i}]: {trial_id!r} is not the id of an unobserved trial")
        pending.append(trial_id)
    return list(trials.values()), observations, pending


def _rng_state(data: dict[str, Any], where: str) -> dict[str, Any]:
    inner = data.get("state")
    ok = (
        data.get("bit_generator") == "PCG64"
        and isinstance(inner, dict)
        and all(is_int(inner.get(k)) and 0 <= inner[k] < 2**128 for k in ("state", "inc"))
        and data.get("has_uint32") in (0, 1)
        and not isinstance(data.get("has_uint32"), bool)
        and is_int(data.get("uinteger"))
        and 0 <= data["uinteger"] < 2**32
    )
    if not ok:
        raise FormatError(f"{where}: not a numpy PCG64 generator state")
    return data


def _hyperparameters(data: Any, where: str) -> dict[str, dict[str, list[float]]] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected null or an object of models, got {data!r}"[:300])
    for model, params in data.items():
        if not isinstance(params, dict):
            raise FormatError(f"{where}.{model}: expected an object of parameter lists")
        for name, values in params.items():
            if not (isinstance(values, list) and all(is_real(v) and math.isfinite(v) for v in values)):
                raise FormatError(f"{where}.{model}.{name}: expected a list of finite numbers")
    return data
