"""Target-aware search on a real pool: which runs of the Step Law dense sweep should it have trained?

Run: ``python -m benchmarks.target_pool [--fractions 0.02,0.05] [--seeds 0,1,2,3,4] [--split size|tokens]``

The pool is a real sweep (``../shared/data/steplaw_dense_sweep_upto537M.csv``): split ``size``
pools the grids with N <= 429M and targets the 537M grids; split ``tokens`` pools tokens <= 20B and
targets the larger-token grids. Each method spends a share of the pool's compute (6 N D summed
over its runs) on runs of the pool, then fits ``tuner.scaling_law()`` on them and proposes lr and
batch size for every target grid; the score is the mean gap of the grid cell nearest each
proposal to the grid's best cell (as in ``benchmarks/scaling_real.py``). Methods, same run:

* ``target``: ``Tuner(space, target=...)`` asking in pool mode (``ask(candidates=pool)``), the
  target the largest target scale (the largest N, and the geometric mean of the target tokens);
  half the asks serve the target (``target_share``), by the scaling law's own criterion
  (``TunerSettings.target_design="law"``, :mod:`carbs_like.scaling.design`);
* ``target gp``: the same with the GP's criterion (``target_design="gp"``, :mod:`carbs_like.target`);
* ``target only``: the law's criterion on every ask (``target_share=1``; no front asks);
* ``no target``: the same tuner without a target;
* ``random``: a random subset of the pool with the same compute;
* ``whole pool``: the law fitted on every run of the pool (the ceiling of what runs can give).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Sequence

import numpy as np

from .scaling_real import DENSE, _space, gap


def _add(tuner, r) -> None:
    tuner.add({"n_params": r.n_params, "tokens": r.tokens, "lr": r.lr, "batch_size": r.batch_size},
              loss=None if r.diverged else r.final_loss, cost=6.0 * r.n_params * r.tokens, failed=bool(r.diverged))


def score(tuner, test) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            law = tuner.scaling_law()
        except ValueError:  # too few runs or scales for a law: no proposal at all
            return math.nan
        gaps = []
        for (n, d), grid in test.groupby(["n_params", "tokens"]):
            pred = law.predict(n_params=float(n), tokens=float(d))
            gaps.append(gap(grid, pred.config["lr"], pred.config["batch_size"]))
    return float(np.mean(gaps))


def searched(pool, test, *, budget: float, seed: int, target: dict | None, **settings) -> tuple[float, int]:
    from carbs_like import Tuner, TunerSettings

    tuner = Tuner(_space(pool, "n_params"), seed=seed, target=target, settings=TunerSettings(**settings))
    def key(n, d, lr, bs):  # configs come back through the search space: match to 1e-6 in log
        return tuple(round(math.log(float(v)), 6) for v in (n, d, lr, bs))

    rows = {key(r.n_params, r.tokens, r.lr, r.batch_size): r for r in pool.itertuples()}
    configs = [{"n_params": r.n_params, "tokens": r.tokens, "lr": r.lr, "batch_size": r.batch_size}
               for r in rows.values()]
    spent, n = 0.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while True:
            trial = tuner.ask(candidates=configs)
            c = trial.config
            k = key(c["n_params"], c["tokens"], c["lr"], c["batch_size"])
            r = rows[k]
            cost = 6.0 * r.n_params * r.tokens
            if spent + cost > budget and n >= 8:
                tuner.forget(trial)
                break
            tuner.tell(trial, loss=None if r.diverged else r.final_loss, cost=cost, failed=bool(r.diverged))
            configs = [x for x in configs if key(*x.values()) != k]
            spent += cost
            n += 1
    return score(tuner, test), n


METHODS = {"target": {}, "target gp": {"target_design": "gp"}, "target only": {"target_share": 1.0}, "no target": {}}


def random_subset(pool, test, *, budget: float, seed: int) -> tuple[float, int]:
    from carbs_like import Tuner

    rng = np.random.default_rng(seed)
    tuner = Tuner(_space(pool, "n_params"), seed=seed)
    spent, n = 0.0, 0
    for i in rng.permutation(len(pool)):
        r = pool.iloc[i]
        cost = 6.0 * r.n_params * r.tokens
        if spent + cost > budget:
            continue
        _add(tuner, r)
        spent += cost
        n += 1
    return score(tuner, test), n


def main(argv: Sequence[str] | None = None) -> int:
    import pandas as pd
    import torch

    parser = argparse.ArgumentParser(prog="python -m benchmarks.target_pool", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", default="0.02,0.05")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--split", choices=("size", "tokens"), default="size")
    parser.add_argument("--methods", default="target,target gp,target only,no target,random")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    df = pd.read_csv(DENSE)
    pool, test = ((df[df["n_params"] <= 4.3e8], df[df["n_params"] > 4.3e8]) if args.split == "size"
                  else (df[df["tokens"] <= 2e10], df[df["tokens"] > 2e10]))
    target = {"n_params": float(test["n_params"].max()),
              "tokens": float(math.exp(np.log(test["tokens"].unique()).mean()))}
    total = float((6.0 * pool["n_params"] * pool["tokens"]).sum())
    from carbs_like import Tuner

    whole = Tuner(_space(pool, "n_params"), seed=0)
    for r in pool.itertuples():
        _add(whole, r)
    print(f"split {args.split}: pool {len(pool)} runs, {test.groupby(['n_params', 'tokens']).ngroups} target grids, "
          f"target {target}; whole pool: gap {100 * score(whole, test):.3f}%", flush=True)
    methods = args.methods.split(",")
    for f in (float(x) for x in args.fractions.split(",")):
        results: dict[str, list[tuple[float, int]]] = {m: [] for m in methods}
        for seed in (int(s) for s in args.seeds.split(",")):
            for m in methods:
                t0 = time.process_time()
                if m == "random":
                    res = random_subset(pool, test, budget=f * total, seed=seed)
                else:
                    res = searched(pool, test, budget=f * total, seed=seed, target=None if m == "no target" else target,
                                   **METHODS[m])
                results[m].append(res)
                print(f"  {100 * f:.0f}% compute, seed {seed}, {m:9s}: gap {100 * res[0]:.3f}% with {res[1]} runs "
                      f"({time.process_time() - t0:.0f} CPU s)", flush=True)
        print(f"{100 * f:.0f}% of the pool's compute, mean of {len(results[methods[0]])} seeds: " + ", ".join(
            f"{m} {100 * np.nanmean([r[0] for r in v]):.3f}% [{sum(math.isnan(r[0]) for r in v)} without a law] ({np.mean([r[1] for r in v]):.0f} runs)"
            for m, v in results.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
