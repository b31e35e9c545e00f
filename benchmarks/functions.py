"""BoTorch's test functions, carbs_like beside Optuna: ``python -m benchmarks.functions [--seeds 0,1,2]``.

Hartmann6 (best loss after 40 trials; optimum -3.322; cost constant, so carbs_like improves the loss
only) and BraninCurrin (hypervolume of the (Branin, Currin) front after 30 trials, reference point
(18, 6), maximum 59.36; Currin is carbs_like's cost).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

from .problems import function_problem
from .run import run_search


def hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    pts = points[(points[:, 0] < ref[0]) & (points[:, 1] < ref[1])]
    pts = pts[np.argsort(pts[:, 1])]
    area, best = 0.0, ref[0]
    for i, (loss, cost) in enumerate(pts):
        best = min(best, loss)
        nxt = pts[i + 1, 1] if i + 1 < len(pts) else ref[1]
        area += (ref[0] - best) * (nxt - cost)
    return area


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.functions")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="carbs_like,optuna_gp")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    for name, n in (("hartmann6", 40), ("branin_currin", 30)):
        problem = function_problem(name)
        for m in args.methods.split(","):
            scores = []
            for seed in (int(s) for s in args.seeds.split(",")):
                h = run_search(m, problem, seed=seed, n_trials=n)["history"]
                if problem.multi_objective:
                    scores.append(hypervolume(np.array([[r["loss"], r["cost"]] for r in h]), problem.ref_point))
                else:
                    scores.append(min(r["loss"] for r in h))
            what = "hypervolume" if problem.multi_objective else "best loss"
            print(f"{name:14s} @{n} {m:11s} {what}: " + " ".join(f"{s:.3f}" for s in scores)
                  + f"  (mean {np.mean(scores):.3f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
