"""Proposals for larger runs and their verification, as the CLI shows them.

``predict`` asks the tuner's :class:`~carbs_like.scaling.ScalingLaw` for a config at a target size
(or cost budget) with its uncertainty; ``run_verify`` trains that config and perturbations of it at
the target size and says whether the proposal was best.

Files (versioned JSON through :mod:`carbs_like._io`): ``verify_runs.jsonl``, every verify run ever
trained in the experiment (append-only, one record a line, each with ``format`` and ``version``),
and ``verify.json``, the view of the latest call with its verdict.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import FormatError, append_json_line, check_header, loads, read_json, write_json_atomic
from ..scaling import Prediction, ScalingLaw
from ..space import ChoiceParam, SearchSpace
from ..tuner import Tuner
from .experiment import Experiment, UsageError
from .run import run_trainable

__all__ = ["N_BOOTSTRAP", "demo_target", "fit_law", "format_prediction", "held_out_space", "held_out_target", "predict", "read_verify", "run_verify"]

VERIFY_FILE = "verify.json"
VERIFY_RUNS_FILE = "verify_runs.jsonl"
VIEW_FORMAT = "carbs_like.verify"
RUN_FORMAT = "carbs_like.verify_run"
VERSION = 1


# Scaling-law refits behind every interval the CLI shows (demo, status, propose, verify, report,
# serve): one number, so the same folder gives the same interval whichever command asks. Measured:
# 5 CPU s for the demo's 60 runs (3 s with 8).
N_BOOTSTRAP = 16


def fit_law(tuner: Tuner, *, n_bootstrap: int = N_BOOTSTRAP) -> ScalingLaw:
    """The tuner's :class:`~carbs_like.scaling.ScalingLaw`; a one-line error when it cannot fit.

    Args:
        n_bootstrap: refits behind the uncertainty bands (each costs about a second of CPU).
    """
    try:
        return ScalingLaw.fit(tuner, n_bootstrap=n_bootstrap)
    except ValueError as e:
        raise UsageError(f"cannot fit a scaling law: {e}") from None


def predict(law: ScalingLaw, *, scaling: Mapping[str, float] | None = None, cost: float | None = None) -> Prediction:
    """``law.predict(...)`` at the target size or budget; a one-line error when it cannot."""
    try:
        return law.predict(cost=cost) if cost is not None else law.predict(dict(scaling or {}))
    except ValueError as e:
        raise UsageError(f"cannot propose: {e}") from None


def format_prediction(pred: Prediction, tuner: Tuner) -> str:
    """The proposal as an aligned text table, with the searched range beside each value, and the
    prediction's notes (a value clamped to its bounds, a budget's split held near the tried ones)."""
    df = tuner.observations()
    lines = [f"  {'param':<14}{'proposed':>12}   {'interval':<24}{'searched':<20}"]
    for row in pred.rows():
        name, value, iv = row["param"], row["value"], row["interval"]
        span = ""
        if name in df.columns and name != "loss" and df[name].dtype.kind in "if" and len(df):
            span = f"{_num(df[name].min())} .. {_num(df[name].max())}"
        if name == "predicted loss" and len(df[df["status"] == "ok"]):
            span = f"best trained {df.loc[df['status'] == 'ok', 'loss'].min():.4f}"
        ivs = f"{_num(iv[0])} .. {_num(iv[1])}" if iv and iv[0] is not None else ""
        lines.append(f"  {name:<14}{_num(value):>12}   {ivs:<24}{span:<20}")
    for note in pred.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _num(v: Any) -> str:
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int) and abs(v) < 100_000:
        return str(v)
    if isinstance(v, (int, float, np.floating, np.integer)):
        return f"{float(v):.4g}"
    return str(v)


def demo_target(tuner: Tuner, *, factor: float = 10.0) -> dict[str, float]:
    """Each scaling axis at ``factor`` x the largest value any trial used."""
    df = tuner.observations()
    return {s: float(df[s].max()) * factor for s in tuner.space.scaling}


def held_out_target(space: SearchSpace, *, factor: float) -> dict[str, float]:
    """``factor`` x the top of each scaling axis of the (held-out) ``space``: the size the demo
    checks. The demo's search is told it (``target=``), so a share of its runs serve the proposal
    there; without it, the near-optimal runs all gathered at one token budget and the law's token
    exponents rested on one value (a 7% miss at 3x in one fresh-clone run)."""
    return {name: float(space[name].max) * factor for name in space.scaling}


def held_out_space(space: SearchSpace, *, factor: float) -> SearchSpace:
    """``space`` with the top of each scaling axis held out: its upper bound divided by ``factor``.

    The demo searches this space and checks its proposal at ``factor`` x the largest trained size,
    a size no trial saw.
    """
    data = space.to_dict()
    for p in data["params"]:
        if p["name"] in space.scaling and p.get("max") is not None:
            p["max"] = max(float(p["max"]) / factor, float(p["min"]) * 1.5 if p.get("min") else 0.0)
    return SearchSpace.from_dict(data)


# ------------------------------------------------------------------------ verify --------------
def predicted_cost(tuner: Tuner, scaling: Mapping[str, float]) -> tuple[float, int]:
    """Cost of a run at ``scaling`` from a log-linear fit of cost on the scaling axes.

    Returns:
        (predicted cost, number of observations the fit used).
    """
    df = tuner.observations()
    axes = list(tuner.space.scaling)
    X = np.column_stack([np.ones(len(df)), *[np.log(df[a].to_numpy(float)) for a in axes]])
    y = np.log(df["cost"].to_numpy(float))
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    x = np.array([1.0, *[math.log(scaling[a]) for a in axes]])
    return float(math.exp(x @ coef)), len(df)


def perturbations(config: Mapping[str, Any], params: Sequence[str], factors: Sequence[float],
                  *, integer: Sequence[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The proposal and, for each param and factor, the proposal with that param multiplied."""
    runs = [("proposal", dict(config))]
    for p in params:
        for f in factors:
            c = dict(config)
            c[p] = round(c[p] * f) if p in integer else c[p] * f
            runs.append((f"{p} x{f:g}", c))
    return runs


def run_verify(tuner: Tuner, experiment: Experiment, folder: Path, *, scaling: Mapping[str, float] | None,
               cost: float | None, factors: Sequence[float], params: Sequence[str], dry_run: bool = False,
               n_bootstrap: int = N_BOOTSTRAP, out: Any = None, law: ScalingLaw | None = None,
               seeds: int = 1) -> dict[str, Any]:
    """Train the proposal and its perturbations at the target size; write ``verify.json``.

    Every finished run is appended to ``verify_runs.jsonl`` (fsync'd, never rewritten), so no
    run is lost, whatever the target, and a config already trained at a target is never trained
    again: an interrupted verify resumes, and another call with other ``--factors`` adds to the
    first. ``verify.json`` is the view of the latest call: its runs, plus the earlier runs at the
    same target around the same proposal, and the verdict over all of them.

    Args:
        law: the fitted law to propose from (default: fitted here with ``n_bootstrap`` refits).
        seeds: trainings of the proposal, the k-th with ``seed = k`` in its config (the tiny LM
            reads it; other trainables may ignore it): their spread is the noise floor of the verdict.
    """
    out = out or sys.stdout
    pred = predict(law or fit_law(tuner, n_bootstrap=n_bootstrap), scaling=scaling, cost=cost)
    config = dict(pred.config)
    unknown = [p for p in params if p not in config]
    numeric = [p for p in params if p in config and not isinstance(tuner.space[p], ChoiceParam)]
    if unknown or len(numeric) != len(params):
        raise UsageError(f"--params {list(params)}: perturb numeric params of the space {tuner.space.names}")
    integer = [p.name for p in tuner.space.params if getattr(p, "integer", False)]
    runs = perturbations(config, params, factors, integer=integer)
    runs[1:1] = [(f"proposal seed {k}", {**config, "seed": k}) for k in range(1, seeds)]
    target = {s: config[s] for s in tuner.space.scaling}
    each, n_fit = predicted_cost(tuner, target)
    print(f"verify: {len(runs)} runs at {', '.join(f'{k}={v:.3g}' for k, v in target.items())}: "
          + ", ".join(label for label, _ in runs), file=out)
    print(f"verify: predicted cost {each:.3g} per run, {each * len(runs):.3g} in all, one run at a time "
          f"(log-linear fit of cost, in the experiment's unit ({experiment.cost}), on the scaling axes over "
          f"{n_fit} trials)", file=out, flush=True)
    if dry_run:
        return {}
    pool = _recorded_runs(folder)
    here = [r for r in pool if r.get("target") == target]
    trained = {_key(r["config"]): r for r in here}
    proposal_key = _key(config)
    planned = {_key(c) for _, c in runs}
    earlier, seen = [], set()
    for r in here:  # the same proposal's other perturbations, from earlier calls (once each)
        k = _key(r["config"])
        if r.get("proposal") is not None and _key(r["proposal"]) == proposal_key and k not in planned and k not in seen:
            earlier.append(dict(r))
            seen.add(k)
    loss, (lo, hi) = pred.loss, pred.loss_interval
    names = [*params, *(p for r in earlier if (p := r.get("perturbed")) and p not in params)]
    record: dict[str, Any] = {"target": target, "params": list(dict.fromkeys(names)), "proposal": config,
                              "predicted_loss": loss, "predicted_band": [lo, hi],
                              "runs": []}
    for r in earlier:
        print(f"  {r['label']:<14} loss {_num(r['loss']) if r['loss'] is not None else 'failed':>8}   "
              f"cost {r['cost']:.3g}   (an earlier verify)", file=out, flush=True)
    for (label, c), p in zip(runs, [None] * seeds + [p for p in params for _ in factors]):
        key = _key(c)
        if key in trained:
            result = {**trained[key], "label": label}
        else:
            start = time.time()
            r = run_trainable(experiment.trainable, c, metric=experiment.metric, cost=experiment.cost,
                              threads=1)  # measured: 2 threads on 2 busy cores ran 548 s, 1 thread ~120 s
            result = {"label": label, "config": c, "loss": None if r["failed"] else r["loss"], "cost": r["cost"],
                      "seconds": time.time() - start, "target": target, "proposal": config, "perturbed": p}
            _append_run(folder, result)
            trained[key] = result
        record["runs"].append(result)
        print(f"  {label:<14} loss {_num(result['loss']) if result['loss'] is not None else 'failed':>8}   "
              f"cost {result['cost']:.3g}", file=out, flush=True)
    record["runs"].extend(earlier)
    record["verdict"] = verdict(record)
    _write_record(folder, record)
    print(record["verdict"], file=out)
    return record


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


def _recorded_runs(folder: Path) -> list[dict[str, Any]]:
    """Every verify run recorded in ``folder`` (``verify_runs.jsonl``). A line torn by a kill is
    skipped (that run is trained again); any other unreadable line is an error naming it."""
    log = folder / VERIFY_RUNS_FILE
    if not log.exists():
        return []
    runs: list[dict[str, Any]] = []
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines):
        where = f"{log}, line {i + 1}"
        try:
            run = loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue  # torn by a kill mid-write
            raise UsageError(f"{where}: not valid JSON; remove that line (the run is trained again)") from None
        try:
            check_header(run, format=RUN_FORMAT, version=VERSION, where=where, what="verify run")
        except FormatError as e:
            raise UsageError(str(e)) from None
        runs.append({k: v for k, v in run.items() if k not in ("format", "version")})
    return runs


def _append_run(folder: Path, run: Mapping[str, Any]) -> None:
    append_json_line(folder / VERIFY_RUNS_FILE, {"format": RUN_FORMAT, "version": VERSION, **run})


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    write_json_atomic(folder / VERIFY_FILE, {"format": VIEW_FORMAT, "version": VERSION, **record})


def read_verify(folder: Path) -> dict[str, Any] | None:
    """The latest verify view of an experiment folder (``verify.json``), or None."""
    file = folder / VERIFY_FILE
    if not file.exists():
        return None
    try:
        return read_json(file, format=VIEW_FORMAT, version=VERSION, what="verify record")
    except FormatError as e:
        raise UsageError(str(e)) from None


def verdict(record: Mapping[str, Any]) -> str:
    """Whether the proposal beat its perturbations, and whether its loss fell inside the band."""
    runs = [r for r in record["runs"] if r.get("loss") is not None]
    prop = next((r for r in record["runs"] if r["label"] == "proposal"), None)
    if prop is None or prop.get("loss") is None:
        return "verify: the proposal failed (diverged) at the target size"
    repeats = [r for r in runs if r["label"].startswith("proposal seed")]
    runs = [r for r in runs if r not in repeats]
    best = min(runs, key=lambda r: (r["loss"], r is not prop))  # a tie goes to the proposal
    others = [r for r in runs if r is not prop]
    if best is prop:
        gap = (min(r["loss"] for r in others) / prop["loss"] - 1) * 100 if others else 0.0
        text = f"verify: the proposal was best (loss {prop['loss']:.4f}; next best is {gap:.2f}% worse)"
    else:
        gap = (prop["loss"] / best["loss"] - 1) * 100
        text = f"verify: {best['label']} beat the proposal by {gap:.2f}% (loss {best['loss']:.4f} vs {prop['loss']:.4f})"
    band = record.get("predicted_band")
    if band and band[0] is not None:
        inside = band[0] <= prop["loss"] <= band[1]
        text += (f"; predicted loss {record['predicted_loss']:.4f} [{band[0]:.4f}, {band[1]:.4f}], measured "
                 f"{prop['loss']:.4f}: {'inside' if inside else 'outside'} the band")
    if repeats:
        spread = max(abs(r["loss"] / prop["loss"] - 1) for r in repeats) * 100
        text += (f"; noise floor: the proposal's loss moved {spread:.2f}% between "
                 f"{len(repeats) + 1} seeds")
    return text
