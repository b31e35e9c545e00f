"""Benchmark: the scaling law on real dense LLM sweeps (Step Law release, full lr x batch grids).

The 15 grids of ``shared/data/steplaw_dense_sweep_upto537M.csv`` (214M-537M non-embedding params,
4B-100B tokens) are imported into a Tuner with ``Tuner.add`` (diverged runs as ``failed=True``),
``tuner.scaling_law()`` is fitted, and for each split the proposal for every test grid is scored
by the measured loss of the grid cell nearest to it (in log lr, log batch) against the grid's best
cell. Splits:

* (a) in-sample: fit on all 15 grids, propose for each of them;
* (b) size: fit on N <= 429M, propose for the 537M grids;
* (c) tokens: fit on tokens <= 20B, propose for every larger-token grid.

Peers, computed in the same run from the same training grids:

* **carry-over**: the best cell of the training grid nearest the test grid (in log N, log D);
* **refit**: the Step Law form log lr = a + b log N + c log D, log bs = a' + c' log D, fitted by
  least squares through the near-optimal cells (within 0.2% of each grid's best);
* **argmin fit**: the same form through the grid argmins only.

Also: the coverage of the law's 90% lr / batch intervals and loss band (grid-best values) on the
test grids, the lr interval's half-width as a factor (``lr x/÷``), the predicted loss's mean
error against the grid's best and its band's mean half-width (``loss ±``), the median over test grids of the R^2 of ``law.predict_loss`` over
the grid's non-diverged cells, which estimator the cross-validation chose, the lr exponents
(n_params, tokens) and the fit time. In (a) carry-over is 0 by construction (the nearest training
grid is the test grid itself). Optionally (``--moe``)
the MoE sweep of ``tests/data`` against carry-over.

With ``--synthetic N``: the coverage of the 90% intervals of the true optimum at 33x beyond the
runs, and the regret there, on N ``LLMLandscape.random`` landscapes (160 runs imported each).

With ``--scattered N``: the same dense splits fitted on 10 random cells of each grid (N draws),
too few per scale for per-scale optima, so the law runs on its response surface alone, as on a
tuner's own scattered search.

Run:  python -m benchmarks.scaling_real [--data PATH] [--moe] [--synthetic 20] [--scattered 3]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DENSE = ROOT.parent / "shared" / "data" / "steplaw_dense_sweep_upto537M.csv"
MOE = ROOT / "tests" / "data" / "steplaw_moe_sweep.csv"


def _space(df, n_col: str):
    from carbs_like import LogParam, SearchSpace

    return SearchSpace(
        [LogParam("n_params", min=float(df[n_col].min()) / 2, max=float(df[n_col].max()) * 4),
         LogParam("tokens", min=float(df["tokens"].min()) / 2, max=float(df["tokens"].max()) * 4),
         LogParam("lr", min=float(df["lr"].min()) / 4, max=float(df["lr"].max()) * 4),
         LogParam("batch_size", min=float(df["batch_size"].min()) / 4, max=float(df["batch_size"].max()) * 4,
                  integer=True)],
        scaling=["n_params", "tokens"],
    )


def fit_law(train, n_col: str):
    from carbs_like.tuner import Tuner

    tuner = Tuner(_space(train, n_col), seed=0)
    for r in train.itertuples():
        n = getattr(r, n_col)
        tuner.add({"n_params": n, "tokens": r.tokens, "lr": r.lr, "batch_size": r.batch_size},
                  loss=None if r.diverged else r.final_loss, cost=6.0 * n * r.tokens, failed=bool(r.diverged))
    t0 = time.perf_counter()
    law = tuner.scaling_law()
    return law, time.perf_counter() - t0


def gap(grid, lr: float, bs: float) -> float:
    """Loss of the grid cell nearest (lr, bs) in log space, relative to the grid's best."""
    d = np.log(grid["lr"] / lr) ** 2 + np.log(grid["batch_size"] / bs) ** 2
    return float(grid["final_loss"].to_numpy()[int(np.argmin(d.to_numpy()))] / grid["final_loss"].min() - 1)


def step_form(train, n_col: str, *, within: float | None):
    """Least squares of log lr on (1, log N, log D) and log bs on (1, log D) through the cells
    within ``within`` of each grid's best (None: the argmins only)."""
    rows = []
    for _, g in train.groupby([n_col, "tokens"]):
        best = g["final_loss"].min()
        rows.append(g[g["final_loss"] <= best * (1 + within)] if within is not None else g.loc[[g["final_loss"].idxmin()]])
    cells = __import__("pandas").concat(rows)
    lN, lD = np.log(cells[n_col].to_numpy()), np.log(cells["tokens"].to_numpy())
    one = np.ones_like(lN)
    varies_n = np.ptp(lN) > 1e-9
    Z = np.stack([one, lN, lD] if varies_n else [one, lD], axis=1)
    c_lr, *_ = np.linalg.lstsq(Z, np.log(cells["lr"].to_numpy()), rcond=None)
    c_bs, *_ = np.linalg.lstsq(np.stack([one, lD], axis=1), np.log(cells["batch_size"].to_numpy()), rcond=None)

    def propose(n: float, d: float) -> tuple[float, float]:
        z = [1.0, math.log(n), math.log(d)] if varies_n else [1.0, math.log(d)]
        return math.exp(float(np.dot(c_lr, z))), math.exp(float(c_bs[0] + c_bs[1] * math.log(d)))

    return propose


def run_split(name: str, train, test, n_col: str) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law, seconds = fit_law(train, n_col)
    refit = step_form(train, n_col, within=0.002)
    argmin = step_form(train, n_col, within=None)
    grids_train = [(k, g) for k, g in train.groupby([n_col, "tokens"])]
    out = {m: [] for m in ("law", "carry-over", "refit", "argmin fit")}
    cover = {"lr": [], "batch_size": [], "loss": []}
    widths, loss_err, loss_width, r2 = [], [], [], []
    for (n, d), grid in test.groupby([n_col, "tokens"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = law.predict(n_params=float(n), tokens=float(d))
        out["law"].append(gap(grid, pred.config["lr"], pred.config["batch_size"]))
        near = min(grids_train, key=lambda kg: (math.log(kg[0][0] / n)) ** 2 + (math.log(kg[0][1] / d)) ** 2)[1]
        b = near.loc[near["final_loss"].idxmin()]
        out["carry-over"].append(gap(grid, b.lr, b.batch_size))
        out["refit"].append(gap(grid, *refit(n, d)))
        out["argmin fit"].append(gap(grid, *argmin(n, d)))
        best = grid.loc[grid["final_loss"].idxmin()]
        for p in ("lr", "batch_size"):
            lo, hi = pred.intervals[p]
            cover[p].append(lo <= best[p] <= hi)
        cover["loss"].append(pred.loss_interval[0] <= best.final_loss <= pred.loss_interval[1])
        widths.append(pred.intervals["lr"][1] / pred.intervals["lr"][0])
        if hasattr(law, "predict_loss"):  # (absent before issue 12: the benchmark also runs on older code)
            ok = grid[~grid["diverged"].astype(bool)]
            what_if = law.predict_loss([{"n_params": float(n), "tokens": float(d), "lr": float(r.lr),
                                         "batch_size": int(r.batch_size)} for r in ok.itertuples()])["loss"].to_numpy()
            y = ok["final_loss"].to_numpy()
            r2.append(1.0 - float(np.sum((y - what_if) ** 2)) / float(np.sum((y - y.mean()) ** 2)))
        loss_err.append(pred.loss / best.final_loss - 1)
        loss_width.append((pred.loss_interval[1] - pred.loss_interval[0]) / (2 * pred.loss))
    est = sorted({getattr(r, "estimator", "surface") for r in law.relations.values()})
    return {"split": name, "grids": len(out["law"]), **{m: float(np.mean(v)) for m, v in out.items()},
            "cover lr": f"{sum(cover['lr'])}/{len(cover['lr'])}", "cover bs": f"{sum(cover['batch_size'])}/{len(cover['lr'])}",
            "cover loss": f"{sum(cover['loss'])}/{len(cover['lr'])}", "estimator": "+".join(est), "fit s": seconds,
            "lr x/÷": f"{math.sqrt(float(np.exp(np.mean(np.log(widths))))):.2f}",
            "loss err": f"{100 * float(np.mean(loss_err)):+.2f}%",
            "loss ±": f"{100 * float(np.mean(loss_width)):.2f}%",
            "R2": f"{float(np.median(r2)):.2f}" if r2 else "-",
            "lr exps": tuple(round(v, 2) for v in law.relations["lr"].slopes)}


def dense(path: Path) -> list[dict]:
    import pandas as pd

    df = pd.read_csv(path)
    return [
        run_split("(a) in-sample, all 15", df, df, "n_params"),
        run_split("(b) N<=429M -> 537M", df[df["n_params"] <= 4.3e8], df[df["n_params"] > 4.3e8], "n_params"),
        run_split("(c) D<=20B -> larger D", df[df["tokens"] <= 2e10], df[df["tokens"] > 2e10], "n_params"),
    ]


def scattered(path: Path, seeds: int, *, per_grid: int = 10) -> list[dict]:
    """The dense splits on ``per_grid`` random cells of each grid (``seeds`` draws): too few per
    scale for per-scale optima, so the law runs on its response surface alone, as it does on a
    tuner's own search. The refit and carry-over see the same cells; the test grids stay whole."""
    import pandas as pd

    df = pd.read_csv(path)
    rows = []
    for seed in range(seeds):
        sub = df.groupby(["n_params", "tokens"]).sample(n=per_grid, random_state=seed)
        rows += [run_split(f"(a) {per_grid}/grid, draw {seed}", sub, df, "n_params"),
                 run_split(f"(b) {per_grid}/grid, draw {seed}", sub[sub["n_params"] <= 4.3e8], df[df["n_params"] > 4.3e8],
                           "n_params"),
                 run_split(f"(c) {per_grid}/grid, draw {seed}", sub[sub["tokens"] <= 2e10], df[df["tokens"] > 2e10],
                           "n_params")]
    for split in ("(a)", "(b)", "(c)"):
        part = [r for r in rows if r["split"].startswith(split)]
        rows.append({**{c: "" for c in part[0]}, "split": f"{split} mean of {seeds}", "grids": part[0]["grids"],
                     **{m: float(np.mean([r[m] for r in part])) for m in ("law", "refit", "argmin fit", "carry-over")},
                     "fit s": float(np.mean([r["fit s"] for r in part]))})
    return rows


def moe(path: Path) -> list[dict]:
    import pandas as pd

    df = pd.read_csv(path)
    n = "n_active_params"
    small = sorted(df[n].unique())
    return [
        run_split("MoE tokens<2e10 -> 2e10", df[df["tokens"] < 2e10], df[df["tokens"] == 2e10], n),
        run_split("MoE smaller n_active -> largest", df[df[n] < small[-1]], df[df[n] == small[-1]], n),
    ]


def synthetic(n: int, *, runs: int = 160) -> dict:
    """Coverage of the 90% intervals at 33x beyond the runs on ``n`` random landscapes, each with
    ``runs`` imported runs scattered around its optima (as tests/test_scaling.py imports them)."""
    import warnings

    from carbs_like.testing import LLMLandscape
    from carbs_like.tuner import Tuner

    target = {"n_params": 1e9, "tokens": 2e10}
    hits = {"lr": 0, "batch_size": 0, "weight_decay": 0, "loss": 0}
    regrets = []
    for seed in range(n):
        land = LLMLandscape.random(seed)
        rng = np.random.default_rng(seed)
        tuner = Tuner(land.space(), seed=seed)
        (n_lo, n_hi), (d_lo, d_hi) = land.n_params_range, land.tokens_range
        for _ in range(runs):
            N, D = (math.exp(rng.uniform(math.log(a), math.log(b))) for a, b in ((n_lo, n_hi), (d_lo, d_hi)))
            opt = land.optimal_config(N, D)
            config = {"n_params": N, "tokens": D,
                      "lr": opt["lr"] * math.exp(0.7 * rng.standard_normal()),
                      "batch_size": float(np.clip(opt["batch_size"] * math.exp(0.7 * rng.standard_normal()), 1e3, 1e7)),
                      "weight_decay": float(np.clip(opt["weight_decay"] * math.exp(0.7 * rng.standard_normal()), 1e-4, 10)),
                      "schedule": str(rng.choice(list(land.schedule_factor)))}
            loss, cost, failed = land.evaluate(config, rng=rng)
            tuner.add(config, loss=loss, cost=cost, failed=failed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = tuner.scaling_law().predict(**target)
        truth = land.optimal_config(**target)
        for p in ("lr", "batch_size", "weight_decay"):
            lo, hi = pred.intervals[p]
            hits[p] += lo <= truth[p] <= hi
        best = float(land.optimal_loss(**target))
        hits["loss"] += pred.loss_interval[0] <= best <= pred.loss_interval[1]
        regrets.append(land.loss(pred.config) / best - 1 if land.loss(pred.config) is not None else math.inf)
    return {"landscapes": n, **{f"cover {k}": f"{v}/{n}" for k, v in hits.items()},
            "median regret": f"{100 * float(np.median(regrets)):.3f}%", "worst regret": f"{100 * max(regrets):.3f}%"}


def show(rows: list[dict]) -> None:
    cols = ["split", "grids", "law", "refit", "argmin fit", "carry-over", "cover lr", "cover bs", "cover loss",
            "lr x/÷", "loss err", "loss ±", "R2", "estimator", "lr exps", "fit s"]
    print(" | ".join(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{100 * v:.3f}%" if c in ("law", "refit", "argmin fit", "carry-over")
                         else f"{v:.1f}" if c == "fit s" else str(v))
        print(" | ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DENSE)
    ap.add_argument("--moe", action="store_true", help="also the MoE sweep of tests/data")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also the interval coverage at 33x on N random synthetic landscapes")
    ap.add_argument("--scattered", type=int, default=0, metavar="N",
                    help="also the dense splits on 10 random cells per grid, N draws (the surface alone)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    rows = dense(args.data)
    if args.moe:
        rows += moe(MOE)
    print("mean gap of the proposal's nearest grid cell to the grid's best cell (lower is better)")
    show(rows)
    if args.scattered:
        print("\nscattered: 10 random cells per grid (no scale has enough runs for per-scale optima)")
        show(scattered(args.data, args.scattered))
    if args.synthetic:
        print("\nsynthetic: 90% interval coverage of the true optimum at 33x beyond the runs")
        for k, v in synthetic(args.synthetic).items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
