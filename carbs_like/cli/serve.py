"""``carbs-like serve``: a read-only local web page that follows one or more searches live.

A standard-library HTTP server (no framework, no external CDN) with two routes:

* ``/``: one HTML page with a few lines of plain JavaScript that polls the JSON below every two
  seconds and draws, per experiment, the loss-vs-cost plot of every trial (SVG, hover shows the
  config) with the front, the trials running / done / failed, the compute spent against the
  budget (as bars), the trials in search coordinates (parallel coordinates, coloured by loss),
  the scaling-law proposal for the experiment's target (else 10x the largest run) with the
  fit's warnings, each scaling relation (its per-scale optima, fitted curve, band and proposal;
  "not determined" and clamped proposals said so), and a per-param importance. The page itself
  lives in :mod:`.page`;
* ``/api/state``: that data as JSON (``{"format": "carbs_like.live", "version": 1, ...}``).

The experiments are read with ``Tuner.read`` (the journal is never written, locked or cut), so the
page works while another process searches. Each experiment is re-read only when its journal
changed, and the scaling law is refitted only when the number of observations did.
"""

from __future__ import annotations

import errno
import json
import math
import threading
import warnings
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..scaling.curves import relation_curves
from .experiment import EXPERIMENT_FILE, JOURNAL_FOLDER, TUNER_FILE, Experiment, UsageError, open_tuner
from .export import trial_rows
from .page import PAGE
from .verify import N_BOOTSTRAP, demo_target

__all__ = ["LIVE_FORMAT", "Live", "experiment_folders", "importance", "make_server", "relations_json", "serve"]

LIVE_FORMAT = "carbs_like.live"
LIVE_VERSION = 1


def experiment_folders(path: Path) -> list[Path]:
    """``path`` itself when it is an experiment folder, else its sub-folders that are."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder; give an experiment folder (e.g. runs/demo) or its parent")
    if (path / EXPERIMENT_FILE).is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / EXPERIMENT_FILE).is_file())
    if not found:
        raise UsageError(f"{path}: no experiment here ({EXPERIMENT_FILE} in it or in a sub-folder); "
                         "run `carbs-like tune` or `carbs-like demo` first")
    return found


def importance(hyperparameters: Mapping[str, Any] | None, space: Any) -> dict[str, float] | None:
    """Each param's share of ``1 / lengthscale`` of the loss GP (larger: the loss moves faster
    along it), from the tuner's stored hyperparameters; None before the GPs were fitted."""
    raw = ((hyperparameters or {}).get("loss") or {}).get("covar_module.raw_lengthscale")
    if not raw or len(raw) != space.dim:
        return None
    inverse = [1.0 / max(_softplus(r), 1e-12) for r in raw]  # gpytorch's Positive() constraint
    per_param = {p.name: max(inverse[space.columns(p.name)]) for p in space.params}
    total = sum(per_param.values())
    return {k: v / total for k, v in per_param.items()} if total > 0 else None


def relations_json(law: Any, target: Mapping[str, float], *, level: float = 0.9, n: int = 40) -> list[dict[str, Any]]:
    """Each relation against each scaling axis as JSON: the points, the curve and its band, the
    proposal at ``target`` (see :func:`carbs_like.scaling.curves.relation_curves`, which the
    report's relation figure draws too)."""
    out = []
    for row in relation_curves(law, target=target, level=level, n=n):
        for c in row:
            out.append({
                "param": c.param, "axis": c.axis, "log_y": c.transform == "log", "determined": c.determined,
                "uncertain": c.uncertain, "notes": list(c.notes), "slope": c.slope, "slope_std": c.slope_std, "largest": c.largest,
                "x": c.x.tolist(), "curve": c.curve.tolist(), "lower": c.lower.tolist(), "upper": c.upper.tolist(),
                "clamped": c.clamped.tolist(),
                "points": [{"x": float(x), "y": float(y), "excess": float(q)}
                           for x, y, q in zip(c.points_x, c.points_y, c.points_excess)],
                "proposal": None if c.proposal is None else
                {"x": c.proposal[0], "y": c.proposal[1], "clamped": c.proposal[2]},
            })
    return out


def _finite(v: Any) -> Any:
    """JSON-able data with NaN and infinities as null (JSON has neither)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


class Live:
    """The state of the experiments under ``path``, re-read when their journals change."""

    def __init__(self, path: Path, *, n_bootstrap: int = N_BOOTSTRAP) -> None:
        self.path = path
        self.n_bootstrap = n_bootstrap
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[Any, dict[str, Any]]] = {}
        self._laws: dict[Path, tuple[int, dict[str, Any]]] = {}
        self.requests = 0  # answered state() calls
        experiment_folders(path)  # fail now, with one line, for a wrong path

    def state(self) -> dict[str, Any]:
        with self._lock:
            out = []
            for folder in experiment_folders(self.path):
                try:
                    out.append(self._experiment(folder))
                except UsageError as e:  # e.g. no trial yet, or a corrupt journal: say so on the page
                    out.append({"name": folder.name, "error": str(e)})
            self.requests += 1
            return {"format": LIVE_FORMAT, "version": LIVE_VERSION, "experiments": out}

    def _experiment(self, folder: Path) -> dict[str, Any]:
        files = [folder / JOURNAL_FOLDER / "journal.jsonl", folder / TUNER_FILE, folder / EXPERIMENT_FILE]
        stamp = tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else None for f in files)
        cached = self._cache.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        experiment = Experiment.load(folder)
        with warnings.catch_warnings():  # a torn last line while the search writes it: read the rest
            warnings.simplefilter("ignore")
            tuner = open_tuner(folder, experiment)
        rows = trial_rows(tuner)
        if rows:  # one search coordinate per param (a choice: its index), for the parallel coordinates
            U = tuner.space.to_search([r["config"] for r in rows])
            for r, u in zip(rows, U):
                r["search"] = [float(u[tuner.space.columns(n)].argmax()) if u[tuner.space.columns(n)].numel() > 1
                               else float(u[tuner.space.columns(n)][0]) for n in tuner.space.names]
        counts = {s: sum(r["status"] == s for r in rows) for s in ("pending", "ok", "failed", "forgotten")}
        front = tuner.pareto_front()
        data = {
            "name": folder.name, "trainable": experiment.trainable, "params": list(tuner.space.names),
            "scaling": list(tuner.space.scaling), "counts": counts,
            "spent": float(sum(o.cost for o in tuner.observed)), "budget": experiment.budget,
            "trial_limit": experiment.trials, "trials": rows,
            "front": [{"cost": float(c), "loss": float(v)} for c, v in zip(front["cost"], front["loss"])],
            "importance": importance(tuner.state_dict()["model"]["hyperparameters"], tuner.space),
            "proposal": self._proposal(folder, tuner, (experiment.settings or {}).get("target")),
        }
        self._cache[folder] = (stamp, data)
        return data

    def _proposal(self, folder: Path, tuner: Any, target: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The scaling law's proposal for the experiment's target (else 10x the largest run),
        refitted when observations arrive."""
        n = tuner.n_observations
        if folder in self._laws and self._laws[folder][0] == n:
            return self._laws[folder][1]
        target_is_set = bool(target)
        try:
            target = dict(target) if target else demo_target(tuner, factor=10.0)
            law = tuner.scaling_law(n_bootstrap=self.n_bootstrap)
            pred = law.predict(target)
            out = {"target": target, "target_is_set": target_is_set, "config": pred.config, "loss": pred.loss,
                   "loss_interval": list(pred.loss_interval),
                   "intervals": {k: list(v) for k, v in pred.intervals.items()}, "cost": pred.cost, "level": pred.level,
                   "notes": list(pred.notes), "relations": relations_json(law, target, level=pred.level)}
        except (ValueError, KeyError) as e:  # too few runs, or none on the scaling axes yet
            out = {"error": f"no proposal yet: {e}", "target_is_set": target_is_set}
        self._laws[folder] = (n, out)
        return out


def make_server(path: Path, *, host: str = "127.0.0.1", port: int = 8080, n_bootstrap: int = N_BOOTSTRAP) -> ThreadingHTTPServer:
    """The server (not started: call ``serve_forever``); port 0 picks a free one."""
    live = Live(path, n_bootstrap=n_bootstrap)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            route = self.path.split("?")[0]
            if route == "/api/state":
                body, kind = json.dumps(_finite(live.state()), allow_nan=False, default=str).encode(), "application/json"
            elif route in ("/", "/index.html"):
                body, kind = PAGE.encode(), "text/html; charset=utf-8"
            else:
                self.send_error(404, "only / and /api/state")
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # quiet: the terminal shows only errors
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; pick another with --port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.live = live  # type: ignore[attr-defined]
    return server


def serve(path: Path, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the page until interrupted."""
    server = make_server(path, host=host, port=port)
    print(f"carbs-like: serving {path} at http://{host}:{server.server_address[1]}/ (read-only; Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()

