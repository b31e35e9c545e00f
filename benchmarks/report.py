"""Scores, the markdown table and the PNG plots, from the raw results of :mod:`benchmarks.run`.

Every number is recomputed from the saved histories (configs and outcomes), so the report can be
rebuilt (``python -m benchmarks.run --suite S --report-only``) without rerunning anything.
Landscape fronts are scored on *noiseless* losses (see :func:`carbs_like.testing.front_gap`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .problems import FunctionProblem, LandscapeProblem, function_problem, landscape_problem

__all__ = ["hypervolume_2d", "score", "write_report"]


# --------------------------------------------------------------------------- scores ---------
def hypervolume_2d(points: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume dominated by `n x 2` points (both minimised) up to the reference point."""
    pts = points[(points[:, 0] < ref[0]) & (points[:, 1] < ref[1])]
    if len(pts) == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 1])]  # by cost
    hv, best_loss = 0.0, ref[0]
    costs = np.append(pts[:, 1], ref[1])
    for i, (loss, _) in enumerate(pts):
        best_loss = min(best_loss, loss)
        hv += (ref[0] - best_loss) * (costs[i + 1] - costs[i])
    return float(hv)


def _observations(history: Sequence[Mapping[str, Any]], n: int):
    import pandas as pd

    rows = [{**h["config"], "status": "failed" if h["failed"] else "ok"} for h in history[:n]]
    return pd.DataFrame(rows)


def _best_config(history: Sequence[Mapping[str, Any]], n: int) -> dict[str, Any] | None:
    ok = [h for h in history[:n] if not h["failed"]]
    return min(ok, key=lambda h: h["loss"])["config"] if ok else None


def _float(x: Any) -> float:
    return float(x) if not isinstance(x, str) else float(x)  # "inf"/"nan" were written as strings


def curve_points(n_max: int, *, n_points: int = 12) -> list[int]:
    """Trial counts at which curves are drawn."""
    return sorted({max(1, int(round(v))) for v in np.linspace(0, n_max, n_points + 1)[1:]})


def score(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Per (problem, method, seed) scores from the raw results.

    Returns:
        ``{"landscape": {problem: {method: {seed: {...}}}}, "function": ..., "latency": ...}``.
    """
    suite = raw["suite"]
    out: dict[str, Any] = {"landscape": defaultdict(lambda: defaultdict(dict)),
                           "function": defaultdict(lambda: defaultdict(dict)),
                           "latency": defaultdict(dict)}
    problems: dict[str, LandscapeProblem | FunctionProblem] = {}
    for which in suite["landscapes"]:
        p = landscape_problem(which)
        problems[p.name] = p
    for fname, _ in suite["functions"]:
        p = function_problem(fname)
        problems[p.name] = p
    checkpoints = list(suite["checkpoints"])

    from carbs_like.testing import front_gap

    out["errors"] = {k: r["error"] for k, r in raw["runs"].items() if "error" in r}
    for key, run in raw["runs"].items():
        if "error" in run:
            continue
        head, method, tail = key.split("/")
        if head == "latency":
            out["latency"][method][int(tail)] = run
            continue
        problem, seed, hist = problems[head], int(tail), run["history"]
        if isinstance(problem, LandscapeProblem):
            s: dict[str, Any] = {"gap": {}, "regret_carried": {}, "regret_scaling": {}, "why_no_scaling": None}
            for n in sorted(set(checkpoints) | set(curve_points(max(checkpoints)))):
                if n > len(hist):
                    continue
                s["gap"][n] = front_gap(_observations(hist, n), problem.landscape)
            s["stopped"] = run.get("stopped")
            for n in (n for n in checkpoints if n <= len(hist)):
                best = _best_config(hist, n)
                s["regret_carried"][n] = problem.regret_at_target(best) if best else math.inf
                extra = run.get("extra", {}).get(str(n))
                if extra is not None:
                    if extra.get("proposal") is not None:
                        s["regret_scaling"][n] = problem.regret_at_target(extra["proposal"])
                    else:
                        s["why_no_scaling"] = extra.get("why")
            s["front"] = _noiseless_front(problem, hist)
            s["ask_s"] = float(np.mean([h["ask_s"] for h in hist]))
            out["landscape"][head][method][seed] = s
        else:
            configs = [h["config"] for h in hist]
            values = problem.values(configs)
            if problem.multi_objective:
                curve = [hypervolume_2d(values[:n], problem.ref_point) for n in range(1, len(values) + 1)]
                s = {"curve": curve, "final": curve[-1], "points": values.tolist()}
            else:
                curve = np.minimum.accumulate(values).tolist()
                s = {"curve": curve, "final": curve[-1]}
            s["stopped"] = run.get("stopped")
            s["ask_s"] = float(np.mean([h["ask_s"] for h in hist]))
            out["function"][head][method][seed] = s
    return out


def _noiseless_front(problem: LandscapeProblem, hist) -> list[tuple[float, float]]:
    """(cost, noiseless loss) of the front of all of a run's successful configs, sorted by cost."""
    pts = sorted(
        (problem.landscape.cost(h["config"]), problem.landscape.loss(h["config"]))
        for h in hist if not h["failed"]
    )
    front, best = [], math.inf
    for c, loss in pts:
        if loss is not None and loss < best:
            best = loss
            front.append((c, loss))
    return front


# --------------------------------------------------------------------------- formatting -----
def _fmt(values: Sequence[float], *, digits: int = 3, pct: bool = False) -> str:
    vals = np.asarray(values, dtype=float)
    if vals.size == 0:
        return "n/a"
    finite = vals[np.isfinite(vals)]
    scale = 100.0 if pct else 1.0
    div = int((~np.isfinite(vals)).sum())
    if finite.size == 0:
        return f"diverged ({div}/{vals.size})"
    m = scale * finite.mean()
    text = f"{m:.{digits}g}"
    if finite.size > 1:
        text += f" ± {scale * finite.std(ddof=1):.2g}"
    text += "%" if pct else ""
    if div:
        text += f" ({div}/{vals.size} diverged)"
    return text


def _methods_in(raw: Mapping[str, Any]) -> list[str]:
    order = raw.get("methods") or []
    seen = {k.split("/")[1] for k in raw["runs"]}
    return [m for m in order if m in seen] + sorted(seen - set(order))


def markdown(raw: Mapping[str, Any], scores: Mapping[str, Any]) -> str:
    suite = raw["suite"]
    methods = _methods_in(raw)
    checkpoints = list(suite["checkpoints"])
    v = raw.get("versions", {})
    lines = [
        f"# Benchmarks: suite `{suite['name']}`",
        "",
        f"- run: {raw.get('started')} to {raw.get('finished')}",
        f"- machine: {raw.get('machine')}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- seeds: {list(suite['seeds'])}; mean ± standard deviation over seeds",
        *([f"- scaling-law proposals refitted from the saved runs on {raw['scaling_refitted']} (`--refit-scaling`)"]
          if raw.get("scaling_refitted") else []),
        *([f"- left out of this suite: {suite['leave_out_reason']}"] if suite.get("leave_out") else []),
        f"- reproduce: `python -m benchmarks.run --suite {suite['name']} --jobs {raw.get('jobs', 1)}`",
        "",
    ]
    if scores["landscape"]:
        lines += [
            "## 1. Cost-aware LLM landscapes",
            "",
            "Front gap: mean relative gap of the method's loss-vs-cost front (noiseless losses of its "
            "successful configs) to the true front, over 20 log-spaced cost points (0 is perfect; "
            "`carbs_like.testing.front_gap`). Regret at 33x: relative excess loss of the "
            "recommendation run at 1e9 params and 2e10 tokens; *carried* = the best observed config's "
            "lr, batch size, weight decay and schedule at the larger size; *scaling law* = "
            "`tuner.scaling_law().propose(n_params=1e9, tokens=2e10)`. Lower is better everywhere.",
            "",
        ]
        for pname, per_method in scores["landscape"].items():
            n = checkpoints[-1]
            header = ["method"] + [f"gap @{c}" for c in checkpoints]
            header += [f"regret 33x @{n}: best config carried", f"regret 33x @{n}: scaling law", "s / ask"]
            lines += [f"### {pname}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for m in methods:
                seeds = per_method.get(m)
                if not seeds:
                    continue
                row = [m]
                for n in checkpoints:
                    row.append(_fmt([s["gap"][n] for s in seeds.values() if n in s["gap"]], pct=True))
                n = checkpoints[-1]
                row.append(_fmt([s["regret_carried"][n] for s in seeds.values() if n in s["regret_carried"]], pct=True))
                sc = [s["regret_scaling"][n] for s in seeds.values() if n in s["regret_scaling"]]
                why = next((s["why_no_scaling"] for s in seeds.values() if s["why_no_scaling"]), None)
                why = (why or "").split(";")[0].split(":")[0]
                row.append(_fmt(sc, pct=True) if sc else ("—" if m != "carbs_like" else f"n/a ({why})"))
                row.append(f"{np.mean([s['ask_s'] for s in seeds.values()]):.2f}")
                lines.append("| " + " | ".join(row) + " |")
            lines += ["", f"![fronts]({_fronts_png(pname)}) ![gap]({_gap_png(pname)})", ""]
        lines += _headline(scores, checkpoints)
    if scores["function"]:
        lines += [
            "## 2. BoTorch test functions",
            "",
            "Branin, Hartmann6: best value found (the optimum is 0.397887 and -3.32237); carbs_like is "
            "told a constant cost of 1, so its front is the single best point. BraninCurrin: loss = "
            "Branin, cost = Currin (both minimised), the hypervolume up to (18, 6) (maximum 59.36); "
            "peers minimise (Branin, log10 Currin) jointly, whose front is the same.",
            "",
        ]
        fnames = list(scores["function"])
        header = ["method"] + [f"{f} @{n}" for f, n in suite["functions"] if f in fnames]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for m in methods:
            row = [m]
            for f, n_trials in suite["functions"]:
                seeds = scores["function"].get(f, {}).get(m)
                done = [s["final"] for s in (seeds or {}).values() if len(s["curve"]) == n_trials]
                row.append(_fmt(done, digits=4) if done else "n/a")
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "![best so far](best_so_far.png)", ""]
    if scores["latency"]:
        ns = sorted({n for per in scores["latency"].values() for n in per})
        lines += [
            "## 3. Ask latency",
            "",
            "Seconds per `ask` after importing N random observations of the default landscape "
            "(median over the timed asks; wall clock, and process CPU time in brackets, which counts "
            "every thread). The machine is shared, so wall times carry load noise.",
            "",
            "| method | " + " | ".join(f"N = {n}" for n in ns) + " |",
            "|---|" + "---|" * len(ns),
        ]
        for m in methods:
            per = scores["latency"].get(m)
            if not per:
                continue
            row = [m]
            for n in ns:
                r = per.get(n)
                if r is None:
                    row.append("n/a")
                elif "skipped" in r:
                    row.append(r["skipped"].replace("an ask at", "skipped: an ask at"))
                else:
                    row.append(f"{np.median(r['wall_s']):.2f} ({np.median(r['cpu_s']):.2f})")
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "![latency](latency.png)", ""]
    stopped = [f"- `{p}/{m}/{seed}`: {s['stopped']}" for p, pm in scores["landscape"].items()
               for m, sd in pm.items() for seed, s in sd.items() if s.get("stopped")]
    stopped += [f"- `{f}/{m}/{seed}`: {s['stopped']}" for f, fm in scores["function"].items()
                for m, sd in fm.items() for seed, s in sd.items() if s.get("stopped")]
    if stopped:
        lines += ["## Runs stopped by the suite's time limit (their later checkpoints are left out)", "",
                  *stopped, ""]
    if scores["errors"]:
        lines += ["## Runs that raised", ""]
        for key, tb in scores["errors"].items():
            lines += [f"- `{key}`: `{tb.strip().splitlines()[-1]}`"]
        lines.append("")
    return "\n".join(lines) + "\n"


def _headline(scores: Mapping[str, Any], checkpoints: Sequence[int]) -> list[str]:
    """carbs_like's front gap against the best peer's, per landscape and checkpoint."""
    lines = ["### Headline: front gap of the best peer / carbs_like's (above 1: carbs_like is closer)", ""]
    for pname, per_method in scores["landscape"].items():
        if "carbs_like" not in per_method:
            continue
        parts = []
        for n in checkpoints:
            ours = np.mean([s["gap"][n] for s in per_method["carbs_like"].values() if n in s["gap"]])
            peers = {m: np.mean([s["gap"][n] for s in sd.values() if n in s["gap"]])
                     for m, sd in per_method.items() if m != "carbs_like"}
            if not peers:
                continue
            best = min(peers, key=peers.get)
            parts.append(f"@{n}: {peers[best] / ours:.2f}x (best peer {best})")
        lines.append(f"- {pname}: " + "; ".join(parts))
    n = checkpoints[-1]
    lines += ["", f"### Headline: regret at 33x after {n} trials (median over seeds; lower is better)", ""]
    for pname, per_method in scores["landscape"].items():
        parts = []
        for m, sd in per_method.items():
            carried = [s["regret_carried"][n] for s in sd.values() if n in s["regret_carried"]]
            scaled = [s["regret_scaling"][n] for s in sd.values() if n in s["regret_scaling"]]
            if m == "carbs_like" and scaled:
                parts.append(f"carbs_like scaling law {_pct(np.median(scaled))}")
            if carried:
                label = "carbs_like carried" if m == "carbs_like" else m
                parts.append(f"{label} {_pct(np.median(carried))}")
        lines.append(f"- {pname}: " + ", ".join(parts))
    return lines + [""]


def _pct(x: float) -> str:
    return f"{100 * x:.2g}%" if math.isfinite(x) else "diverges"


def _fronts_png(pname: str) -> str:
    return f"fronts_{pname}.png"


def _gap_png(pname: str) -> str:
    return f"gap_{pname}.png"


# --------------------------------------------------------------------------- plots ----------
def plot(raw: Mapping[str, Any], scores: Mapping[str, Any], *, out: Path) -> list[Path]:
    """Write the PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = _methods_in(raw)
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    paths = []
    suite = raw["suite"]
    for which in suite["landscapes"]:
        problem = landscape_problem(which)
        per_method = scores["landscape"].get(problem.name)
        if not per_method:
            continue
        # Fronts of the first seed, against the truth.
        fig, ax = plt.subplots(figsize=(7, 4.5))
        costs = np.geomspace(6 * 1e6 * 1e7 * 10, 6 * 3e7 * 3e9, 200)
        truth = problem.landscape.true_front(costs)
        ax.plot(costs, truth, "k-", lw=2, label="true front")
        for m in methods:
            seeds = per_method.get(m)
            if not seeds:
                continue
            front = seeds[min(seeds)]["front"]
            if front:
                c, l = zip(*front)
                ax.step(c, l, where="post", color=colors[m], label=m, lw=1.3)
        ax.set_xscale("log")
        lo = float(np.nanmin(truth))
        ax.set_ylim(lo * 0.98, float(np.nanmax(truth)) * 1.25)
        ax.set_xlabel("cost (FLOPs)")
        ax.set_ylabel("loss (noiseless)")
        ax.set_title(f"{problem.name}: fronts after {max(suite['checkpoints'])} trials (seed {min(next(iter(per_method.values())))})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out / _fronts_png(problem.name)))
        # Gap against trials.
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in methods:
            seeds = per_method.get(m)
            if not seeds:
                continue
            ns = sorted(set.intersection(*(set(s["gap"]) for s in seeds.values())))
            G = np.array([[s["gap"][n] for n in ns] for s in seeds.values()]) * 100
            ax.plot(ns, G.mean(0), color=colors[m], label=m, marker="o", ms=3)
            ax.fill_between(ns, G.min(0), G.max(0), color=colors[m], alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("trials")
        ax.set_ylabel("front gap (%)")
        ax.set_title(f"{problem.name}: gap to the true front (mean, min-max over seeds)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out / _gap_png(problem.name)))
    if scores["function"]:
        fnames = [f for f, _ in suite["functions"] if f in scores["function"]]
        fig, axes = plt.subplots(1, len(fnames), figsize=(4.5 * len(fnames), 3.8), squeeze=False)
        for ax, f in zip(axes[0], fnames):
            problem = function_problem(f)
            for m in methods:
                seeds = scores["function"][f].get(m)
                if not seeds:
                    continue
                n = min(len(s["curve"]) for s in seeds.values())  # a stopped run is shorter
                C = np.array([s["curve"][:n] for s in seeds.values()])
                x = np.arange(1, n + 1)
                if problem.multi_objective:  # hypervolume, higher is better
                    ax.plot(x, C.mean(0), color=colors[m], label=m)
                    ax.fill_between(x, C.min(0), C.max(0), color=colors[m], alpha=0.12)
                else:  # regret of the best so far, log scale
                    gap = np.maximum(C - problem.optimum, 1e-6)
                    ax.plot(x, np.exp(np.log(gap).mean(0)), color=colors[m], label=m)
                    ax.fill_between(x, gap.min(0), gap.max(0), color=colors[m], alpha=0.12)
            if problem.multi_objective:
                ax.axhline(problem.optimum, color="k", ls="--", lw=1, label="max HV")
                ax.set_ylabel("hypervolume (mean, min-max)")
            else:
                ax.set_yscale("log")
                ax.set_ylabel("best so far - optimum (geo. mean, min-max)")
            ax.set_xlabel("trials")
            ax.set_title(f)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out / "best_so_far.png"))
    if scores["latency"]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m in methods:
            per = scores["latency"].get(m)
            if not per:
                continue
            ns = sorted(n for n, r in per.items() if "skipped" not in r)
            ax.plot(ns, [np.median(per[n]["wall_s"]) for n in ns], marker="o", color=colors[m], label=m)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("observations")
        ax.set_ylabel("seconds per ask (wall, median)")
        ax.set_title("ask latency")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out / "latency.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(raw: Mapping[str, Any], *, out: Path) -> Path:
    """Score ``raw``, write ``out/results_<suite>.md`` and the PNGs; returns the markdown path."""
    scores = score(raw)
    plot(raw, scores, out=out)
    path = out / f"results_{raw['suite']['name']}.md"
    path.write_text(markdown(raw, scores))
    return path
