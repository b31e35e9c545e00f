"""A long run: 2,000 observations of a cheap objective. Prints ask() latency and memory over time.

For each window of ``--window`` observations it prints the median and 95th percentile of the
``ask()`` latency and the process's resident memory (RSS) at the window's end. Latency should stay
bounded as the observations grow (hyperparameters are refitted on at most ``max_fit_points``
observations, and only when the data grew by ``refit_growth``) and memory should stay flat.

    python benchmarks/long_run.py                       # 2,000 ask/tell rounds (slow on 2 cores)
    python benchmarks/long_run.py --sample 25           # per window: 25 timed ask/tell rounds; the
                                                        #   rest imported with add() (random configs)
    python benchmarks/long_run.py --journal /tmp/sweep  # with the journal on, and time a resume
    python benchmarks/long_run.py --sample 4 --threads 1 --journal /tmp/sweep   # what the report used

``--sample`` makes the run affordable on a small machine: latency depends mostly on the number of
observations, which grows the same way. The objective is the synthetic LLM landscape.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path


def rss_mb() -> float:
    """Current resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="observations in all")
    parser.add_argument("--window", type=int, default=250)
    parser.add_argument("--sample", type=int, default=None, help="timed ask/tell rounds per window (default: all)")
    parser.add_argument("--n-candidates", type=int, default=None, help="TunerSettings.n_candidates (default: its default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--journal", type=Path, default=None, help="journal folder (must not hold a journal yet)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--steady", type=int, default=6, help="asks at the final size, to show RSS does not grow per ask")
    args = parser.parse_args()

    import numpy as np
    import torch

    from carbs_like import Tuner, TunerSettings
    from carbs_like.testing import LLMLandscape

    if args.threads:
        torch.set_num_threads(args.threads)
    landscape = LLMLandscape()
    space = landscape.space()
    settings = TunerSettings(**({"n_candidates": args.n_candidates} if args.n_candidates else {}))
    tuner = Tuner(space, seed=args.seed, settings=settings, path=args.journal)
    rng = np.random.default_rng(args.seed)
    sample = args.window if args.sample is None else min(args.sample, args.window)
    print(
        f"long run: {args.n} observations, {sample} timed ask/tell per window of {args.window}, "
        f"n_candidates={settings.n_candidates}, torch threads={torch.get_num_threads()}, "
        f"journal={'on' if args.journal else 'off'}",
        flush=True,
    )
    print("ask latency in seconds: wall clock, and CPU time of this process (robust to a busy machine)")
    print(
        f"{'observations':>14} {'asks':>5} {'wall median':>12} {'wall p95':>9} {'CPU median':>11} {'CPU p95':>8} "
        f"{'RSS MiB':>8} {'fallbacks':>9}"
    )
    latencies: list[float] = []
    cpu: list[float] = []
    fallbacks = 0
    start = time.perf_counter()
    n_random = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # model notes are counted below instead
        for i in range(args.n):
            if i % args.window < args.window - sample:
                U = space.sobol(1, seed=args.seed + 1, skip=n_random)
                n_random += 1
                config = space.to_configs(U)[0]
                loss, cost, failed = landscape.evaluate(config, rng=rng)
                tuner.add(config, loss=loss, cost=cost, failed=failed)
            else:
                t0, c0 = time.perf_counter(), time.process_time()
                trial = tuner.ask()
                latencies.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                fallbacks += "model_notes" in trial.metadata
                loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
                tuner.tell(trial, loss=loss, cost=cost, failed=failed)
            if (i + 1) % args.window == 0:
                gc.collect()
                print(
                    f"{i + 1 - args.window:>6d}-{i + 1:<7d} {len(latencies):>5d} {statistics.median(latencies):>12.3f} "
                    f"{p95(latencies):>9.3f} {statistics.median(cpu):>11.3f} {p95(cpu):>8.3f} "
                    f"{rss_mb():>8.0f} {fallbacks:>9d}",
                    flush=True,
                )
                latencies, cpu, fallbacks = [], [], 0
    print(f"total {time.perf_counter() - start:.0f} s; front: {len(tuner.pareto_front())} points")
    if args.steady:
        # At a fixed number of observations (ask, then forget), RSS must not creep up per ask.
        rss = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for _ in range(args.steady):
                tuner.forget(tuner.ask())
                gc.collect()
                rss.append(rss_mb())
        print(f"RSS MiB over {args.steady} more asks at {args.n} observations: {' '.join(f'{r:.0f}' for r in rss)}")
    if args.journal is not None:
        tuner.close()
        t0 = time.perf_counter()
        resumed = Tuner.resume(args.journal)
        print(
            f"resume of {len(resumed.observations())} observations: {time.perf_counter() - t0:.2f} s; "
            f"journal {(args.journal / 'journal.jsonl').stat().st_size / 2**20:.1f} MiB"
        )
        resumed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
