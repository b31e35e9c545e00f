"""Benchmark: how the best learning rate moves with width, under standard parametrization and muP.

The tiny LM (:mod:`carbs_like.tinylm`, 2 layers, byte-level, the Python standard library as text)
is trained at several widths and a grid of peak learning rates, once under the standard
parametrization (``parametrization="sp"``) and once under muP (``"mup"``, base width 32), with
tokens, batch size and weight decay fixed. For each parametrization the runs are imported into a
``Tuner`` (``add``; diverged runs as failures) over ``n_params`` (the scaling axis) and ``lr``, and
``scaling_law()`` fits ``lr* ~ n_params^b``. Since ``n_params ~ 24 d_model^2`` the exponent in
width is ``2 b``. Printed per parametrization: the grid's best lr at each width, the fitted
exponents in n_params and in width with their standard errors, and the least-squares slope of the
grid argmins in log width (a peer that uses no model). muP's promise (Yang et al. 2022, arXiv
2203.03466) is an exponent near 0; under SP with Adam the best lr falls with width.

Writes ``benchmarks/results/mup_lr.png`` (loss against lr per width, one panel per
parametrization, the law's lr* marked) unless ``--no-plot``.

Run:  python -m benchmarks.mup_exponent [--widths 32 48 64 96 128] [--lrs 8] [--tokens 2e5] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _train(job: dict) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from carbs_like.tinylm import train

    return {**job, **{k: v for k, v in train(job, threads=1).items() if k in ("loss", "cost", "failed", "d_model")}}


def sweep(widths: list[int], lrs: np.ndarray, *, tokens: float, batch_size: int, weight_decay: float,
          workers: int) -> list[dict]:
    from carbs_like.tinylm import ModelShape

    jobs = [{"parametrization": p, "n_params": float(ModelShape(2, d, 64).n_params), "tokens": tokens,
             "lr": float(lr), "batch_size": batch_size, "weight_decay": weight_decay}
            for p in ("sp", "mup") for d in widths for lr in lrs]
    out = []
    with ProcessPoolExecutor(workers) as pool:
        for i, r in enumerate(pool.map(_train, jobs), 1):
            out.append(r)
            print(f"  [{i}/{len(jobs)}] {r['parametrization']:>3} d={r['d_model']:<4} lr={r['lr']:.2e} "
                  f"loss={'diverged' if r['failed'] else format(r['loss'], '.4f')}", flush=True)
    return out


def fit(runs: list[dict], lrs: np.ndarray):
    """The scaling law over (n_params; lr) fitted to one parametrization's runs."""
    from carbs_like import Tuner
    from carbs_like.space import LogParam, SearchSpace

    n = [r["n_params"] for r in runs]
    space = SearchSpace([LogParam("n_params", min=min(n), max=max(n)),
                         LogParam("lr", min=float(lrs.min()), max=float(lrs.max()))], scaling=["n_params"])
    tuner = Tuner(space, seed=0)
    for r in runs:
        tuner.add({"n_params": r["n_params"], "lr": r["lr"]}, loss=None if r["failed"] else r["loss"],
                  cost=r["cost"], failed=r["failed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuner.scaling_law()


def argmin_slope(runs: list[dict]) -> tuple[dict[int, float], float]:
    best = {}
    for d in sorted({r["d_model"] for r in runs}):
        ok = [r for r in runs if r["d_model"] == d and not r["failed"]]
        best[d] = min(ok, key=lambda r: r["loss"])["lr"]
    x, y = np.log(list(best)), np.log(list(best.values()))
    return best, float(np.polyfit(x, y, 1)[0])


def plot(runs: list[dict], laws: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    widths = sorted({r["d_model"] for r in runs})
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(widths)))
    for ax, p in zip(axes, ("sp", "mup")):
        law = laws[p]
        for d, c in zip(widths, colors):
            rs = sorted((r for r in runs if r["parametrization"] == p and r["d_model"] == d), key=lambda r: r["lr"])
            ok = [r for r in rs if not r["failed"]]
            ax.plot([r["lr"] for r in ok], [r["loss"] for r in ok], "o-", color=c, ms=4, label=f"width {d}")
            bad = [r for r in rs if r["failed"]]
            if bad:
                ax.plot([r["lr"] for r in bad], [max(r2["loss"] for r2 in ok)] * len(bad), "x", color=c, ms=7)
            star = law.propose(n_params=rs[0]["n_params"])["lr"]
            ax.axvline(star, color=c, lw=1, ls="--", alpha=0.8)
        b, sd = law.relations["lr"].slopes[0], law.relations["lr"].slope_std[0]
        name = "standard parametrization" if p == "sp" else "muP (base width 32)"
        ax.set_title(f"{name}: lr* ~ width^{2 * b:+.2f} ± {2 * sd:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats/byte)")
    axes[1].legend(fontsize=8, title="dashed: law's lr*; x: diverged", title_fontsize=8)
    fig.suptitle("Tiny LM: best lr against width, fixed tokens and batch (benchmarks/mup_exponent.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    ap.add_argument("--lrs", type=int, default=8, help="learning rates per width, log-spaced 5e-4..1.1e-1")
    ap.add_argument("--tokens", type=float, default=2e5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    lrs = np.geomspace(5e-4, 1.1e-1, args.lrs)
    t0, c0 = time.perf_counter(), time.process_time()
    runs = sweep(args.widths, lrs, tokens=args.tokens, batch_size=args.batch_size,
                 weight_decay=args.weight_decay, workers=args.workers)
    laws = {}
    print("\nparametrization | grid-best lr per width | law: lr exponent in n_params | in width | "
          "grid argmins: slope in width")
    for p in ("sp", "mup"):
        rs = [r for r in runs if r["parametrization"] == p]
        laws[p] = law = fit(rs, lrs)
        best, slope = argmin_slope(rs)
        b, sd = law.relations["lr"].slopes[0], law.relations["lr"].slope_std[0]
        grid = ", ".join(f"{d}: {v:.2g}" for d, v in best.items())
        print(f"{p:>15} | {grid} | {b:+.3f} ± {sd:.3f} | {2 * b:+.2f} ± {2 * sd:.2f} | {slope:+.2f}")
    cpu = sum(r["cost"] for r in runs)
    print(f"\n{len(runs)} runs, {cpu:.0f} s of training, {time.perf_counter() - t0:.0f} s wall "
          f"(+{time.process_time() - c0:.0f} CPU s in this process)")
    if not args.no_plot:
        plot(runs, laws, RESULTS / "mup_lr.png")
        print(f"wrote {RESULTS / 'mup_lr.png'}")


if __name__ == "__main__":
    main()
