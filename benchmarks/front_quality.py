"""Front gap after N trials: carbs_like against random search on synthetic LLM landscapes.

The gap is ``carbs_like.testing.front_gap``: the mean relative distance, at 20 log-spaced cost
points, between the best noiseless loss a search found at cost <= c and the true optimum.

    python benchmarks/front_quality.py [--trials 120] [--seeds 0 1 2] [--landscapes 3]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import pandas as pd
import torch

from carbs_like import Tuner
from carbs_like.testing import LLMLandscape, front_gap


def tune(landscape: LLMLandscape, trials: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tuner = Tuner(landscape.space(), seed=seed)
    for _ in range(trials):
        trial = tuner.ask()
        loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
        tuner.tell(trial, loss=loss, cost=cost, failed=failed)
    return tuner.observations()


def random_search(landscape: LLMLandscape, trials: int, seed: int) -> pd.DataFrame:
    space = landscape.space()
    U = torch.rand(trials, space.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    df = pd.DataFrame(space.to_configs(U))
    df["status"] = ["ok" if landscape.loss(c) is not None else "failed" for c in df.to_dict("records")]
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--landscapes", type=int, default=3, help="default + (n-1) random landscapes")
    args = parser.parse_args()
    landscapes = [("default", LLMLandscape())] + [
        (f"random({s})", LLMLandscape.random(s)) for s in range(100, 100 + args.landscapes - 1)
    ]
    print(f"{'landscape':<12} {'carbs_like gap':>15} {'random gap':>11} {'ratio':>6}   ({args.trials} trials, "
          f"seeds {args.seeds})")
    for name, landscape in landscapes:
        ours = [front_gap(tune(landscape, args.trials, s), landscape) for s in args.seeds]
        rnd = [front_gap(random_search(landscape, args.trials, s), landscape) for s in args.seeds]
        print(f"{name:<12} {statistics.mean(ours):>15.4f} {statistics.mean(rnd):>11.4f} "
              f"{statistics.mean(ours) / statistics.mean(rnd):>6.2f}", flush=True)


if __name__ == "__main__":
    main()
