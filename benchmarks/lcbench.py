"""LCBench (YAHPO Gym's surrogate of 34 OpenML tasks x an MLP trained with SGD): real cost-aware HPO.

Run: ``python -m benchmarks.lcbench [--tasks 189906,3945,7593,34539] [--seeds 0,1,2,3,4] [--evals 50]``
(needs the ``bench`` extra: ``pip install -e ".[bench]"``, i.e. onnxruntime and optuna).

The surrogate (``../shared/data/yahpo/lcbench/model.onnx``, or ``--data``) is run with onnxruntime
directly, as yahpo_gym's ``BenchmarkSet.objective_function`` does: continuous inputs in
``CONT_NAMES`` order, the task id integer-encoded. Two views, every method in the same run:

* **epoch searched**: ``epoch`` (1..52) is a param (a scaling axis for carbs_like); loss = val
  cross-entropy, cost = the surrogate's training time. Score: the hypervolume of the
  (val CE, log10 time) front, each objective scaled to [0, 1] by its range over 2,000 random
  configs of that task, reference point (1, 1). The peers minimise (CE, log10 time) jointly.
* **epoch 52**: full training only; score: best val CE after 10 / 25 / 50 evaluations. The peers
  minimise CE; carbs_like is told the time as its cost too (as a user would).

Each evaluation is deterministic (the surrogate has no noise). Prints one table; ``--out`` writes
the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carbs_like import LinearParam, LogParam, SearchSpace

from .methods import make_method, versions
from .problems import Domain, Outcome, domain_of

CONT_NAMES = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers", "max_units",
              "max_dropout")
Y_NAMES = ("time", "val_accuracy", "val_cross_entropy", "val_balanced_accuracy", "test_cross_entropy",
           "test_balanced_accuracy")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yahpo" / "lcbench"
TASKS = ("189906", "3945", "7593", "34539")


class Surrogate:
    """The ONNX surrogate, single-threaded."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime as rt

        options = rt.SessionOptions()
        options.inter_op_num_threads = options.intra_op_num_threads = 1
        self.session = rt.InferenceSession(str(folder / "model.onnx"), sess_options=options,
                                           providers=["CPUExecutionProvider"])
        self.encoding = json.loads((folder / "encoding.json").read_text())["OpenML_task_id"]
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, task: str, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`n x 6` outputs in ``Y_NAMES`` order."""
        x_cont = np.array([[float(c[k]) for k in CONT_NAMES] for c in configs], dtype=np.float32)
        x_cat = np.full((len(configs), 1), self.encoding[task], dtype=np.int32)
        return self.session.run(None, {self.inputs[0]: x_cat, self.inputs[1]: x_cont})[0]


def lcbench_space(*, epoch: bool) -> SearchSpace:
    """LCBench's box (yahpo's config_space.json), with ``epoch`` a scaling axis when searched."""
    params = [
        LogParam("batch_size", min=16, max=512, integer=True),
        LogParam("learning_rate", min=1e-4, max=0.1),
        LinearParam("momentum", min=0.1, max=0.99),
        LinearParam("weight_decay", min=1e-5, max=0.1),
        LinearParam("num_layers", min=1, max=5, integer=True),
        LogParam("max_units", min=64, max=1024, integer=True),
        LinearParam("max_dropout", min=0.0, max=1.0),
    ]
    if epoch:
        return SearchSpace([LinearParam("epoch", min=1, max=52, integer=True), *params], scaling=["epoch"])
    return SearchSpace(params)


@dataclass
class LCBenchProblem:
    """One task, one view; the peers' ``multi_objective`` follows the view."""

    task: str
    epoch_searched: bool
    surrogate: Surrogate
    name: str = "lcbench"

    @property
    def space(self) -> SearchSpace:
        return lcbench_space(epoch=self.epoch_searched)

    @property
    def domain(self) -> Domain:
        return domain_of(self.space)

    @property
    def multi_objective(self) -> bool:
        return self.epoch_searched

    def evaluate(self, config: Mapping[str, Any], *, rng: np.random.Generator | None = None) -> Outcome:
        y = self.surrogate(self.task, [{"epoch": 52, **config}])[0]
        return Outcome(loss=float(y[2]), cost=max(float(y[0]), 1e-3), failed=False)


def hypervolume(points: np.ndarray) -> float:
    """Area dominated by `n x 2` points (minimised, already scaled) up to the reference (1, 1)."""
    pts = points[(points[:, 0] < 1) & (points[:, 1] < 1)]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 1])]
    area, best = 0.0, 1.0
    for i, (loss, cost) in enumerate(pts):
        best = min(best, loss)
        nxt = pts[i + 1, 1] if i + 1 < len(pts) else 1.0
        area += (1.0 - best) * (nxt - cost)
    return area


def scales(problem: LCBenchProblem) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of (val CE, log10 time) over 2,000 random configs: the hypervolume's box."""
    from .methods import sample_domain

    rng = np.random.default_rng(12345)
    configs = [sample_domain(problem.domain, rng) for _ in range(2000)]
    y = problem.surrogate(problem.task, [{"epoch": 52, **c} for c in configs])
    obj = np.stack([y[:, 2], np.log10(np.maximum(y[:, 0], 1e-3))], 1)
    return obj.min(0), obj.max(0)


def run_one(method: str, problem: LCBenchProblem, *, seed: int, evals: int) -> dict[str, Any]:
    m = make_method(method, problem, seed=seed)
    losses, costs, cpu = [], [], []
    rng = np.random.default_rng(seed)
    for _ in range(evals):
        t0 = time.process_time()
        config = m.ask()
        cpu.append(time.process_time() - t0)
        out = problem.evaluate(config, rng=rng)
        m.tell(config, out)
        losses.append(out.loss)
        costs.append(out.cost)
    return {"loss": losses, "cost": costs, "ask_cpu_s": float(np.median(cpu[10:] or cpu))}


def score(view: str, run: Mapping[str, Any], box: tuple[np.ndarray, np.ndarray] | None, at: int) -> float:
    loss = np.array(run["loss"][:at], dtype=float)
    if view == "epoch52":
        return float(np.nanmin(loss))
    lo, hi = box
    obj = np.stack([loss, np.log10(np.maximum(run["cost"][:at], 1e-3))], 1)
    return hypervolume((obj - lo) / (hi - lo))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lcbench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--evals", type=int, default=50)
    parser.add_argument("--views", default="epoch,epoch52")
    parser.add_argument("--methods", default="carbs_like,optuna_gp,optuna_tpe,random")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    surrogate = Surrogate(args.data)
    methods = args.methods.split(",")
    results: dict[str, Any] = {"versions": versions(), "runs": []}
    table: dict[tuple[str, str], list[list[float]]] = {}
    for view in args.views.split(","):
        for task in args.tasks.split(","):
            problem = LCBenchProblem(task, view == "epoch", surrogate)
            box = scales(problem) if view == "epoch" else None
            for method in methods:
                for seed in (int(s) for s in args.seeds.split(",")):
                    t0 = time.process_time()
                    run = run_one(method, problem, seed=seed, evals=args.evals)
                    at = [a for a in (10, 25, 50) if a <= args.evals] or [args.evals]
                    scores = [score(view, run, box, a) for a in at]
                    table.setdefault((view, method), []).append(scores + [run["ask_cpu_s"]])
                    results["runs"].append({"view": view, "task": task, "method": method, "seed": seed,
                                            "scores_at": dict(zip(map(str, at), scores)), **run})
                    print(f"{view:8s} {task:>7s} {method:11s} seed {seed}: "
                          + " ".join(f"@{a}={s:.4f}" for a, s in zip(at, scores))
                          + f"  ({time.process_time() - t0:.0f} CPU s)", flush=True)
    print("\nmean over tasks and seeds (hypervolume: higher is better; val CE: lower is better)")
    print(f"{'view':10s} {'method':12s} {'@10':>7s} {'@25':>7s} {'@50':>7s} {'ask CPU s':>9s}")
    for (view, method), rows in table.items():
        mean = np.mean(np.array(rows), 0)
        print(f"{view:10s} {method:12s} " + " ".join(f"{v:7.4f}" for v in mean[:-1]) + f" {mean[-1]:9.3f}")
    print("versions:", ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    if args.out:
        args.out.write_text(json.dumps(results, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
