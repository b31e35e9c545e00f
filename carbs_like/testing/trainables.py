"""A Ray Tune trainable on the synthetic LLM landscape, for tests, benchmarks and examples.

It lives in the package (not in a test or script) so that Ray pickles it by reference: a function
defined in ``__main__`` is pickled by value into the experiment and breaks restores.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Any

import numpy as np

from .landscapes import LLMLandscape

__all__ = ["landscape_curve", "landscape_trainable"]

_PARAMS = ("n_params", "tokens", "lr", "batch_size", "weight_decay", "schedule")


def landscape_trainable(config: dict[str, Any]) -> None:
    """Train ``config`` on :class:`LLMLandscape`, reporting a loss curve of ``steps`` results.

    Each result has ``loss`` (falling to the landscape's noisy loss at the end), ``cost`` (FLOPs
    spent so far) and ``progress`` (fraction done). A config whose lr diverges raises halfway,
    like a run that hits NaNs. Seed noise depends only on the config, so a re-run reports the same.

    Constants in ``param_space`` steer it: ``steps`` (default 4); ``sleep`` seconds per step;
    ``fail_marker``, a file path: the first trial to find and delete it raises after its first
    result (a simulated crash, exactly once); ``node_dir``, a folder: each run writes an empty file
    ``<node id>.<trial id>`` there as it starts (tests see where trials run). Every result also
    has ``node_id``, the Ray node the run is on.
    """
    import ray
    from ray import tune

    params = {k: config[k] for k in _PARAMS}
    seed = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
    loss, cost, failed = LLMLandscape().evaluate(params, rng=np.random.default_rng(seed))
    steps = int(config.get("steps", 4))
    crash = _claim(config.get("fail_marker"))
    node = ray.get_runtime_context().get_node_id()
    if config.get("node_dir"):
        open(os.path.join(config["node_dir"], f"{node}.{tune.get_context().get_trial_id()}"), "w").close()
    for step in range(1, steps + 1):
        fraction = step / steps
        if failed and fraction > 0.5:
            raise RuntimeError(f"diverged: lr={params['lr']:.3g} is too high")
        value = (loss if loss is not None else 8.0) * (1.0 + 0.3 * (fraction**-0.5 - 1.0))
        if config.get("sleep"):
            time.sleep(float(config["sleep"]))
        tune.report({"loss": value, "cost": cost * fraction, "progress": fraction, "node_id": node})
        if crash:
            raise RuntimeError("simulated crash (fail_marker)")


def landscape_curve(config: dict[str, Any]):
    """The same loss curve as :func:`landscape_trainable`, for the local backend (no Ray): a
    generator yielding ``loss``, ``cost`` (FLOPs so far) and ``final_cost`` at each of ``steps``
    steps (default 4), so the ``carbs-like`` command can stop hopeless runs early."""
    params = {k: config[k] for k in _PARAMS}
    seed = zlib.crc32(json.dumps(params, sort_keys=True, default=str).encode())
    loss, cost, failed = LLMLandscape().evaluate(params, rng=np.random.default_rng(seed))
    steps = int(config.get("steps", 4))
    for step in range(1, steps + 1):
        fraction = step / steps
        if failed and fraction > 0.5:
            raise RuntimeError(f"diverged: lr={params['lr']:.3g} is too high")
        value = (loss if loss is not None else 8.0) * (1.0 + 0.3 * (fraction**-0.5 - 1.0))
        yield {"loss": value, "cost": cost * fraction, "final_cost": cost, "progress": fraction}


def _claim(marker: str | None) -> bool:
    if not marker:
        return False
    try:
        os.remove(marker)
    except FileNotFoundError:
        return False
    return True
