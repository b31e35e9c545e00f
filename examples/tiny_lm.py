"""Tune the tiny transformer LM (carbs_like.tinylm) through Ray Tune with the CarbsSearcher, then
propose a config for a 10x larger model - what ``carbs-like demo`` does, in plain Python.

    python examples/tiny_lm.py           # ~10 minutes on 2 CPU cores; uses a GPU per trial if present

Interrupt it at any time (Ctrl-C) and run it again: Tune restores its experiment from
``runs/tiny_lm-example`` and the searcher continues the same journal, so no finished trial is
lost or run twice.
"""

from pathlib import Path

import torch
from ray import tune

from carbs_like import Tuner
from carbs_like.ray import CarbsSearcher
from carbs_like.tinylm import ray_trainable, search_space

# ray_trainable(config) trains and calls tune.report({"loss": validation nats/byte,
# "cost": seconds x devices, "flops": ..., "n_params": ...}); Tune needs it in an importable module.
STORAGE = Path("runs").resolve()
NAME = "tiny_lm-example"
JOURNAL = STORAGE / NAME / "journal"
MIN_TRIALS = 32  # the scaling law needs this many successful runs

if __name__ == "__main__":
    gpus = 1 if torch.cuda.is_available() else 0
    trainable = tune.with_resources(ray_trainable, {"cpu": 1, "gpu": gpus})
    experiment = STORAGE / NAME
    if tune.Tuner.can_restore(str(experiment)):
        print(f"resuming {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, restart_errored=True)
    else:
        searcher = CarbsSearcher(search_space(), metric="loss", cost="cost", max_trials=50, max_concurrent=2,
                                 path=JOURNAL)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1),
            run_config=tune.RunConfig(name=NAME, storage_path=str(STORAGE), verbose=1),
        )
    tuner.fit()  # Ctrl-C: Tune saves the experiment and returns

    tuner = Tuner.read(JOURNAL)  # everything the searcher was told, from its journal
    ok = tuner.observations().query("status == 'ok'")
    if len(ok) < MIN_TRIALS:
        raise SystemExit(f"{len(ok)} finished trials so far; run this again to resume the search")
    print(tuner.pareto_front().to_string(index=False))
    biggest = ok[["n_params", "tokens"]].max()
    prediction = tuner.scaling_law().predict(n_params=10 * biggest["n_params"], tokens=10 * biggest["tokens"])
    print("proposal for a 10x larger model:", prediction.config)
    print("predicted loss", prediction.loss, "band", prediction.loss_interval)
