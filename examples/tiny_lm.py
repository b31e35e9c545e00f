"""Tune the tiny transformer LM (carbs_like.tinylm) through Ray Tune with the CarbsSearcher, then
propose a config for a 10x larger model - what ``carbs-like demo`` does, in plain Python.

    python examples/tiny_lm.py           # ~10 minutes on 2 CPU cores; uses a GPU per trial if present
"""

import torch
from ray import tune

from carbs_like.ray import CarbsSearcher
from carbs_like.tinylm import ray_trainable, search_space

# ray_trainable(config) trains and calls tune.report({"loss": validation nats/byte,
# "cost": seconds x devices, "flops": ..., "n_params": ...}); Tune needs it in an importable module.

if __name__ == "__main__":
    gpus = 1 if torch.cuda.is_available() else 0
    searcher = CarbsSearcher(search_space(), metric="loss", cost="cost", max_trials=50, max_concurrent=2)
    tune.Tuner(
        tune.with_resources(ray_trainable, {"cpu": 1, "gpu": gpus}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1),
        run_config=tune.RunConfig(name="tiny_lm", verbose=1),
    ).fit()

    tuner = searcher.tuner
    print(tuner.pareto_front().to_string(index=False))
    biggest = tuner.observations()[["n_params", "tokens"]].max()
    prediction = tuner.scaling_law().predict(n_params=10 * biggest["n_params"], tokens=10 * biggest["tokens"])
    print("proposal for a 10x larger model:", prediction.config)
    print("predicted loss", prediction.loss, "band", prediction.loss_interval)
