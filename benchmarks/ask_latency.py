"""Median ask() latency at 50, 200 and 1,000 observations (issue: Core, "Speed").

Each tuner is warm-started with N observations of the synthetic LLM landscape imported with
``add`` (random configs), then runs ask -> tell cycles; the first ask pays the full hyperparameter
fit, later ones reuse it until the observations have grown by ``refit_growth`` (10 %), which is
what a tuning run sees. Prints the median and max per N.

    python benchmarks/ask_latency.py [--sizes 50 200 1000] [--asks 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from carbs_like import Tuner
from carbs_like.testing import LLMLandscape


def latency(n: int, asks: int, seed: int = 0) -> list[float]:
    landscape = LLMLandscape()
    space = landscape.space()
    rng = np.random.default_rng(seed)
    tuner = Tuner(space, seed=seed)
    U = torch.rand(n, space.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for config in space.to_configs(U):
        loss, cost, failed = landscape.evaluate(config, rng=rng)
        tuner.add(config, loss=loss, cost=cost, failed=failed)
    times = []
    for _ in range(asks):
        t0 = time.perf_counter()
        trial = tuner.ask()
        times.append(time.perf_counter() - t0)
        loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
        tuner.tell(trial, loss=loss, cost=cost, failed=failed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--asks", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'observations':>12} {'median ask (s)':>15} {'max ask (s)':>12}  (first ask includes the full fit)")
    for n in args.sizes:
        t = latency(n, args.asks)
        print(f"{n:>12} {statistics.median(t):>15.3f} {max(t):>12.3f}", flush=True)


if __name__ == "__main__":
    main()
