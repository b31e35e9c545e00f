"""Benchmark: propose hyperparameters for a model 33x larger than any tuned, and score them.

On synthetic LLM-pretraining landscapes (:class:`carbs_like.testing.LLMLandscape`): tune 120
trials with n_params <= 3e7, fit ``tuner.scaling_law()``, propose for n_params = 1e9,
tokens = 2e10, and report the loss regret of the proposal against the landscape's true optimum at
that size, beside two baselines measured in the same run:

* **carry-over**: the best small-scale config's lr / batch size / weight decay / schedule, unchanged;
* **Step Law**: the published formulas lr* = 1.79 N^-0.713 D^0.307 and B* = 0.58 D^0.571 (Li et al.
  2025, arXiv 2503.04715), with the weight decay that keeps the best small-scale AdamW timescale
  tau = B / (lr wd D) (Wang & Aitchison 2024). Baselines may use published constants; the method
  does not.

Also ``propose(cost=100 x the largest trial's cost)``: its loss against the best loss reachable at
that cost on the landscape. The default landscape uses the published constants; the random ones
(``LLMLandscape.random(seed)``) use other constants and exponents.

Real data (``shared/data/steplaw_moe_sweep.csv``, 16 grids of lr x batch size of MoE models):
import the runs of the smaller runs with ``add``, propose lr and batch size for the held-out larger
ones (2.5x the tokens; or 2.1x the active parameters), and score the proposal by the measured loss
of the nearest grid point against the grid's best, beside carrying over the best config of the
largest imported run at the same other axis.

With ``--seeds N`` every landscape is tuned with N seeds and a last table gives the median and
worst regret of each method over all of them (one tuning run is a noisy sample: the fit's answer
can flip between local optima when a few runs change).

With ``--target`` the tuner is told the target (``Tuner(..., target=...)``), for target-aware search;
``--skip-real`` skips the MoE sweeps.

Run:  python benchmarks/scaling_law.py [--trials 120] [--random 1 2] [--seeds 1] [--target] [--plots DIR] [--data DIR]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import numpy as np

from carbs_like.testing import LLMLandscape
from carbs_like.testing.landscapes import front_gap
from carbs_like.tuner import Tuner

TARGET = {"n_params": 1e9, "tokens": 2e10}


def tune(landscape: LLMLandscape, *, trials: int, seed: int, target: dict | None = None) -> tuple[Tuner, float]:
    tuner = Tuner(landscape.space(), seed=seed, target=target)
    rng = np.random.default_rng([seed, 7])
    start = time.perf_counter()
    for _ in range(trials):
        trial = tuner.ask()
        loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
        tuner.tell(trial, loss=loss, cost=cost, failed=failed)
    return tuner, time.perf_counter() - start


def regret(landscape: LLMLandscape, config: dict) -> float:
    """Relative loss excess of a config over the landscape's optimum at its size (inf: diverged)."""
    loss = landscape.loss(config)
    if loss is None:
        return math.inf
    return loss / float(landscape.optimal_loss(config["n_params"], config["tokens"])) - 1.0


def best_small(tuner: Tuner) -> dict:
    obs = tuner.observations()
    ok = obs[obs["status"] == "ok"]
    row = ok.loc[ok["loss"].idxmin()]
    return {name: row[name] for name in tuner.space.names}


def carry_over(best: dict, size: dict) -> dict:
    return {**best, **size}


def step_law(best: dict, size: dict) -> dict:
    N, D = size["n_params"], size["tokens"]
    lr = 1.79 * N**-0.713 * D**0.307
    batch = 0.58 * D**0.571
    tau = best["batch_size"] / (best["lr"] * best["weight_decay"] * best["tokens"])
    return {**best, **size, "lr": lr, "batch_size": batch, "weight_decay": batch / (lr * tau * D)}


def reachable_regret(landscape: LLMLandscape, size: dict, space) -> float:
    """The least regret any config within the space's bounds reaches at ``size`` (0 unless the true
    optimum lies outside a bounded param, e.g. a weight decay above its max)."""
    from scipy.optimize import minimize

    opt = landscape.optimal_config(**size)
    names = ["lr", "batch_size", "weight_decay"]

    def clip(name: str, v: float) -> float:
        p = space[name]
        return min(max(v, p.min if p.min is not None else v), p.max if p.max is not None else v)

    def f(z: np.ndarray) -> float:
        cfg = {**opt, **{n: clip(n, math.exp(v)) for n, v in zip(names, z)}}
        return regret(landscape, cfg)

    start = np.log([clip(n, opt[n]) for n in names])
    return float(minimize(f, start, method="Nelder-Mead").fun)


def compute_optimal_loss(landscape: LLMLandscape, cost: float) -> float:
    """The best loss reachable with 6 N D = cost (any N), the right hyperparameters assumed."""
    N = np.geomspace(1e5, 1e13, 20001)
    return float(np.min(landscape.optimal_loss(N, cost / (6 * N))))


def run(name: str, landscape: LLMLandscape, *, trials: int, seed: int, plots: Path | None,
        target: bool = False) -> dict:
    tuner, tune_s = tune(landscape, trials=trials, seed=seed, target=TARGET if target else None)
    start = time.perf_counter()
    law = tuner.scaling_law()
    fit_s = time.perf_counter() - start
    pred = law.predict(**TARGET)
    best = best_small(tuner)
    out = {
        "landscape": name,
        "tune_s": tune_s,
        "fit_s": fit_s,
        "law": regret(landscape, pred.config),
        "carry_over": regret(landscape, carry_over(best, TARGET)),
        "step_law": regret(landscape, step_law(best, TARGET)),
        "floor": reachable_regret(landscape, TARGET, tuner.space),
        "loss_pred": pred.loss,
        "loss_band": pred.loss_interval,
        "loss_true": float(landscape.optimal_loss(**TARGET)),
        "front_gap": front_gap(tuner.observations(), landscape),
    }
    opt = landscape.optimal_config(**TARGET)
    out["lr_ratio"] = pred.config["lr"] / opt["lr"]
    out["lr_in_interval"] = pred.intervals["lr"][0] <= opt["lr"] <= pred.intervals["lr"][1]
    rel = law.relations
    out["exponents"] = {
        "lr": (rel["lr"].slopes, (landscape.lr_n, landscape.lr_d)),
        "batch_size": (rel["batch_size"].slopes, (0.0, landscape.bs_d)),
    }
    largest = float(tuner.observations()["cost"].max())
    budget = 100 * largest
    by_cost = law.predict(cost=budget)
    c = by_cost.config
    out["cost"] = {
        "budget": budget,
        "n_params": c["n_params"],
        "tokens": c["tokens"],
        "hp_regret": regret(landscape, c),
        "vs_compute_optimal": landscape.loss(c) / compute_optimal_loss(landscape, budget) - 1
        if landscape.loss(c) is not None else math.inf,
    }
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        fig = law.plot_relations(target=TARGET)
        fig.savefig(plots / f"relations_{name}.png", dpi=150)
        fig = law.plot_loss(tuner=tuner, target=TARGET)
        fig.savefig(plots / f"loss_{name}.png", dpi=150)
    return out


def step_law_sweeps(data: Path) -> None:
    """Hold out the largest runs of the real Step Law MoE sweeps; print proposal vs carry-over."""
    import pandas as pd

    from carbs_like import LogParam, SearchSpace

    df = pd.read_csv(data / "steplaw_moe_sweep.csv")
    space = SearchSpace(
        [LogParam("n_params", min=1e8, max=2e9), LogParam("tokens", min=1e9, max=3e10),
         LogParam("lr", min=1e-4, max=1e-2), LogParam("batch_tokens", min=3e4, max=3e6, integer=True)],
        scaling=["n_params", "tokens"],
    )

    def grid_regret(grid: pd.DataFrame, lr: float, batch: float) -> float:
        dist = np.log(grid["lr"] / lr) ** 2 + np.log(grid["batch_tokens"] / batch) ** 2
        return float(grid.loc[dist.idxmin(), "final_loss"] / grid["final_loss"].min() - 1)

    print("\nReal Step Law MoE sweeps: held-out grids (regret = nearest grid point's loss vs the grid's best)")
    print(f"{'held out':<22} {'n_active':>9} {'tokens':>8} {'lr law':>8} {'lr best':>8} {'lr carry':>8} "
          f"{'regret law':>10} {'carry':>7}")
    holdouts = {
        "tokens 2e10 (2.5x)": ("tokens", lambda d: d["tokens"] == d["tokens"].max(), "n_active_params"),
        "n_active 1.24e9 (2.1x)": ("n_active_params", lambda d: d["n_active_params"] == d["n_active_params"].max(), "tokens"),
    }
    for label, (axis, held, other) in holdouts.items():
        test, train = df[held(df)], df[~held(df)]
        tuner = Tuner(space, seed=0)
        for r in train.itertuples():
            tuner.add({"n_params": r.n_active_params, "tokens": r.tokens, "lr": r.lr, "batch_tokens": r.batch_tokens},
                      loss=None if r.diverged else r.final_loss, cost=6.0 * r.n_active_params * r.tokens,
                      failed=bool(r.diverged))
        law = tuner.scaling_law()
        regrets = []
        for value, grid in test.groupby(other):
            row = grid.iloc[0]
            cfg = law.propose(n_params=row.n_active_params, tokens=row.tokens)
            same = train[train[other] == value]
            largest = same[same[axis] == same[axis].max()]
            carry = largest.loc[largest["final_loss"].idxmin()]
            best = grid.loc[grid["final_loss"].idxmin()]
            r_law, r_carry = grid_regret(grid, cfg["lr"], cfg["batch_tokens"]), grid_regret(grid, carry.lr, carry.batch_tokens)
            regrets.append((r_law, r_carry))
            print(f"{label:<22} {row.n_active_params:>9.3g} {row.tokens:>8.2g} {cfg['lr']:>8.2e} {best.lr:>8.2e} "
                  f"{carry.lr:>8.2e} {pct(r_law):>10} {pct(r_carry):>7}")
        mean = np.mean(regrets, axis=0)
        print(f"{label:<22} {'mean':>9} {'':>8} {'':>8} {'':>8} {'':>8} {pct(mean[0]):>10} {pct(mean[1]):>7}")


def pct(v: float) -> str:
    return "diverged" if math.isinf(v) else f"{100 * v:.3f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random", type=int, nargs="*", default=[1, 2], help="seeds of LLMLandscape.random")
    ap.add_argument("--seeds", type=int, default=1, help="tuning seeds per landscape (from --seed on)")
    ap.add_argument("--target", action="store_true", help="tell the tuner the target (n_params=1e9, tokens=2e10)")
    ap.add_argument("--skip-real", action="store_true", help="skip the real MoE sweeps")
    ap.add_argument("--plots", type=Path, default=None, help="save the law's plots (PNG) here")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data", help="folder of the public data")
    args = ap.parse_args()

    if args.skip_real:
        pass
    elif (args.data / "steplaw_moe_sweep.csv").is_file():
        step_law_sweeps(args.data)
    else:
        print(f"(no {args.data / 'steplaw_moe_sweep.csv'}: skipping the real-data check)")

    landscapes = [("default", LLMLandscape())] + [(f"random({s})", LLMLandscape.random(s)) for s in args.random]
    results = []
    for seed, (name, landscape) in itertools.product(range(args.seed, args.seed + args.seeds), landscapes):
        if args.seeds > 1:
            name = f"{name}/{seed}"
        r = run(name, landscape, trials=args.trials, seed=seed, plots=args.plots, target=args.target)
        results.append(r)
        print(f"{name}: tuned {args.trials} trials in {r['tune_s']:.0f} s, fitted the law in {r['fit_s']:.1f} s; "
              f"regret: law {pct(r['law'])}, carry-over {pct(r['carry_over'])}, Step Law {pct(r['step_law'])}; "
              f"front gap {r['front_gap']:.4f}",
              flush=True)

    print(f"\nRegret at n_params=1e9, tokens=2e10 ({args.trials} trials with n_params <= 3e7; target <= 0.2%)")
    print("(floor: the least regret reachable within the space's bounds, e.g. when wd* > its max)")
    print(f"{'landscape':<13} {'scaling law':>12} {'carry-over':>11} {'Step Law':>10} {'floor':>7}   {'lr/lr*':>7} {'lr* in 90%':>10}"
          f"   {'loss pred [90% band]':>24} {'true':>6}")
    for r in results:
        lo, hi = r["loss_band"]
        print(f"{r['landscape']:<13} {pct(r['law']):>12} {pct(r['carry_over']):>11} {pct(r['step_law']):>10} {pct(r['floor']):>7}   "
              f"{r['lr_ratio']:>7.3f} {str(r['lr_in_interval']):>10}   {r['loss_pred']:.4f} [{lo:.4f}, {hi:.4f}] "
              f"{r['loss_true']:>6.4f}")

    print("\nFitted exponents (N, D) vs planted")
    for r in results:
        parts = [f"{p}: ({b[0]:+.3f}, {b[1]:+.3f}) vs ({t[0]:+.3f}, {t[1]:+.3f})" for p, (b, t) in r["exponents"].items()]
        print(f"{r['landscape']:<13} " + "   ".join(parts))

    print("\npropose(cost=100 x largest trial cost)")
    print(f"{'landscape':<13} {'budget':>9} {'n_params':>9} {'tokens':>9} {'hp regret':>10} {'vs compute-optimal':>19}")
    for r in results:
        c = r["cost"]
        print(f"{r['landscape']:<13} {c['budget']:>9.2e} {c['n_params']:>9.2e} {c['tokens']:>9.2e} "
              f"{pct(c['hp_regret']):>10} {pct(c['vs_compute_optimal']):>19}")

    if len(results) > 1:
        print(f"\nOver all {len(results)} tuning runs: median and worst regret at the target")
        for key, label in (("law", "scaling law"), ("carry_over", "carry-over"), ("step_law", "Step Law")):
            v = np.array([r[key] for r in results])
            print(f"{label:<12} median {pct(float(np.median(v))):>9}   worst {pct(float(v.max())):>9}   "
                  f"above 1%: {int((v > 0.01).sum())}/{len(v)}")
        v = np.array([r["cost"]["vs_compute_optimal"] for r in results])
        print(f"{'cost= path':<12} median {pct(float(np.median(v))):>9}   worst {pct(float(v.max())):>9}   "
              f"above 1%: {int((v > 0.01).sum())}/{len(v)}   (loss vs the compute-optimal loss at 100x)")


if __name__ == "__main__":
    main()
