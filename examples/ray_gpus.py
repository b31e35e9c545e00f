"""A carbs_like search on Ray Tune that gives larger models more GPUs and small ones a fraction.

Each trial asks for GPUs according to its model size (``tune.with_resources`` with a function of
the config): four small models share one GPU, mid-sized ones take half a GPU, the largest take
two. Trials report no cost, so the searcher charges each its GPU-seconds: Ray's ``time_total_s``
times the GPUs it held (the same function tells the searcher). Cheap trials are cheap, and the
front is loss against GPU-seconds.

    python examples/ray_gpus.py                   # on a machine with GPUs
    python examples/ray_gpus.py --fake-gpus 4     # anywhere: Ray pretends to have 4 GPUs
    python examples/ray_gpus.py --address auto    # on a running cluster (README: "On a Ray cluster")

The trainable here is the synthetic LLM landscape from the package; yours must live in an
importable module too (not in ``__main__``), so that ``tune.Tuner.restore`` can find it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import ray
from ray import tune

from carbs_like.testing.trainables import landscape_trainable
from carbs_like.testing import LLMLandscape
from carbs_like.ray import CarbsScheduler, CarbsSearcher


def resources_for(config: dict[str, Any]) -> dict[str, float]:
    """GPUs by model size: a quarter of a GPU below 3M params, half below 10M, else two."""
    n_params = config["n_params"]
    if n_params < 3e6:
        return {"cpu": 1, "gpu": 0.25}
    if n_params < 1e7:
        return {"cpu": 1, "gpu": 0.5}
    return {"cpu": 2, "gpu": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=None, help="a Ray cluster to join, e.g. 'auto'")
    parser.add_argument("--fake-gpus", type=int, default=0, help="pretend to have this many GPUs")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--storage", default="~/ray_results", help="shared storage on a cluster")
    args = parser.parse_args()

    if args.address:
        ray.init(address=args.address)
    elif args.fake_gpus:
        ray.init(num_gpus=args.fake_gpus, num_cpus=2 * args.fake_gpus)
    else:
        ray.init()
    if not ray.cluster_resources().get("GPU"):
        raise SystemExit("no GPUs in this Ray cluster: run with --fake-gpus 4 to try the example on CPUs")

    space = LLMLandscape().space()
    searcher = CarbsSearcher(
        space,
        metric="loss",
        cost="gpu_seconds",  # not reported by the trainable: measured as time_total_s x GPUs
        resources=resources_for,
        max_trials=args.trials,
    )
    tuner = tune.Tuner(
        tune.with_resources(landscape_trainable, resources_for),
        param_space={"steps": 4, "sleep": 0.2},  # constants merged into every config
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=CarbsScheduler(), num_samples=-1),
        run_config=tune.RunConfig(name="carbs_gpus", storage_path=os.path.expanduser(args.storage), verbose=1),
    )
    tuner.fit()

    front = searcher.tuner.pareto_front()
    front["gpus"] = [resources_for(row)["gpu"] for row in front.to_dict("records")]
    print("\nfront of loss against GPU-seconds:")
    print(front[["n_params", "tokens", "lr", "batch_size", "gpus", "loss", "cost"]].to_string(index=False))


if __name__ == "__main__":
    main()
