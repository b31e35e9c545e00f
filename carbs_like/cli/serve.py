"""``carbs-like serve``: a read-only local web page that follows one or more searches live.

A standard-library HTTP server (no framework, no external CDN) with two routes:

* ``/``: one HTML page with a few lines of plain JavaScript that polls the JSON below every two
  seconds and draws, per experiment, the loss-vs-cost plot of every trial (SVG, hover shows the
  config) with the front, the trials running / done / failed, the compute spent against the
  budget, the scaling-law proposal for 10x the largest run, and a per-param importance;
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

from .experiment import EXPERIMENT_FILE, JOURNAL_FOLDER, TUNER_FILE, Experiment, UsageError, open_tuner
from .export import trial_rows
from .verify import demo_target

__all__ = ["LIVE_FORMAT", "Live", "experiment_folders", "importance", "make_server", "serve"]

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

    def __init__(self, path: Path, *, n_bootstrap: int = 8) -> None:
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
        counts = {s: sum(r["status"] == s for r in rows) for s in ("pending", "ok", "failed", "forgotten")}
        front = tuner.pareto_front()
        data = {
            "name": folder.name, "trainable": experiment.trainable, "params": list(tuner.space.names),
            "scaling": list(tuner.space.scaling), "counts": counts,
            "spent": float(sum(o.cost for o in tuner.observed)), "budget": experiment.budget,
            "trial_limit": experiment.trials, "trials": rows,
            "front": [{"cost": float(c), "loss": float(v)} for c, v in zip(front["cost"], front["loss"])],
            "importance": importance(tuner.state_dict()["model"]["hyperparameters"], tuner.space),
            "proposal": self._proposal(folder, tuner),
        }
        self._cache[folder] = (stamp, data)
        return data

    def _proposal(self, folder: Path, tuner: Any) -> dict[str, Any]:
        """The scaling law's proposal for 10x the largest run, refitted when observations arrive."""
        n = tuner.n_observations
        if folder in self._laws and self._laws[folder][0] == n:
            return self._laws[folder][1]
        try:
            target = demo_target(tuner, factor=10.0)
            pred = tuner.scaling_law(n_bootstrap=self.n_bootstrap).predict(target)
            out = {"target": target, "config": pred.config, "loss": pred.loss, "loss_interval": list(pred.loss_interval),
                   "intervals": {k: list(v) for k, v in pred.intervals.items()}, "cost": pred.cost, "level": pred.level}
        except (ValueError, KeyError) as e:  # too few runs, or none on the scaling axes yet
            out = {"error": f"no proposal yet: {e}"}
        self._laws[folder] = (n, out)
        return out


def make_server(path: Path, *, host: str = "127.0.0.1", port: int = 8080, n_bootstrap: int = 8) -> ThreadingHTTPServer:
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


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>carbs-like live</title>
<style>body{font:13px sans-serif;margin:16px;color:#222}h2{margin:18px 0 4px}table{border-collapse:collapse}
td,th{padding:1px 6px;border-bottom:1px solid #eee;text-align:right}.err{color:#a00}svg{background:#fafafa}
.bar{background:#4a7;height:10px;display:inline-block}</style></head><body>
<h1>carbs-like live</h1><div id="updated">loading...</div><div id="root"></div>
<script>
const firstSeen = {};  // trials each experiment had when this page loaded (the browser test reads it)
const fmt = v => v == null ? "-" : (typeof v === "number" ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(2) : +v.toPrecision(4)) : String(v));
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function plot(e) {
  const pts = e.trials.filter(t => t.cost != null), W = 560, H = 300, P = 40;
  if (!pts.length) return "<p>no finished trial yet</p>";
  const xs = pts.map(t => Math.log10(t.cost)), ok = pts.filter(t => t.loss != null), ys = ok.map(t => t.loss);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) + 1e-9, y0 = ys.length ? Math.min(...ys) : 0, y1 = ys.length ? Math.max(...ys) + 1e-9 : 1;
  const X = c => P + (Math.log10(c) - x0) / (x1 - x0) * (W - 2 * P), Y = l => H - P - (l - y0) / (y1 - y0) * (H - 2 * P);
  let s = `<svg width="${W}" height="${H}"><text x="${W/2}" y="${H-8}">log10 cost</text><text x="4" y="14">loss</text>`;
  s += `<text x="${P}" y="${H-24}">${fmt(x0)}</text><text x="${W-P-20}" y="${H-24}">${fmt(x1)}</text>`;
  s += `<text x="2" y="${H-P}">${fmt(y0)}</text><text x="2" y="${P}">${fmt(y1)}</text>`;
  if (e.front.length) s += `<polyline fill="none" stroke="#c60" stroke-width="2" points="${e.front.map(f => X(f.cost) + "," + Y(f.loss)).join(" ")}"/>`;
  for (const t of pts) {
    const tip = esc(`trial ${t.trial_id} (${t.status}) loss ${fmt(t.loss)} cost ${fmt(t.cost)}\\n` + Object.entries(t.config).map(([k, v]) => `${k} = ${fmt(v)}`).join("\\n"));
    s += t.loss == null ? `<text class="trial" x="${X(t.cost)}" y="${P - 8}" fill="#c00"><title>${tip}</title>x</text>`
      : `<circle class="trial" cx="${X(t.cost)}" cy="${Y(t.loss)}" r="4" fill="#36c" fill-opacity="0.7"><title>${tip}</title></circle>`;
  }
  return s + "</svg>";
}
function table(rows, cols) {
  return "<table><tr>" + cols.map(c => `<th>${esc(c)}</th>`).join("") + "</tr>" + rows.map(r => "<tr>" + cols.map(c => `<td>${esc(fmt(r[c]))}</td>`).join("") + "</tr>").join("") + "</table>";
}
function render(state) {
  let h = "";
  for (const e of state.experiments) {
    h += `<h2>${esc(e.name)}</h2>`;
    if (e.error) { h += `<p class="err">${esc(e.error)}</p>`; continue; }
    const c = e.counts;
    if (!(e.name in firstSeen)) firstSeen[e.name] = e.trials.length;
    h += `<p><span class="counts" data-first-trials="${firstSeen[e.name]}" data-trials="${e.trials.length}">${c.pending} running, ${c.ok} done, ${c.failed} failed` + (c.forgotten ? `, ${c.forgotten} dropped` : "") + `</span>; ${esc(e.trainable)}; compute spent ${fmt(e.spent)}` + (e.budget ? ` of ${fmt(e.budget)} (${(100 * e.spent / e.budget).toFixed(0)}%)` : "") + `; limit ${e.trial_limit} trials</p>`;
    h += plot(e);
    const p = e.proposal;
    h += "<h3>proposal for 10x the largest run</h3>" + (p.error ? `<p>${esc(p.error)}</p>` :
      table(Object.entries(p.config).map(([k, v]) => ({param: k, value: v, low: (p.intervals[k] || [])[0], high: (p.intervals[k] || [])[1]})).concat([{param: "predicted loss", value: p.loss, low: p.loss_interval[0], high: p.loss_interval[1]}]), ["param", "value", "low", "high"]));
    if (e.importance) h += "<h3>param importance (1 / lengthscale of the loss GP)</h3>" + Object.entries(e.importance).map(([k, v]) => `<div>${esc(k)} <span class="bar" style="width:${(200 * v).toFixed(0)}px"></span> ${(100 * v).toFixed(0)}%</div>`).join("");
    const last = e.trials.slice(-15).reverse().map(t => Object.assign({trial: t.trial_id, status: t.status, loss: t.loss, cost: t.cost}, t.config));
    h += "<h3>latest trials</h3>" + table(last, ["trial", "status", ...e.params, "loss", "cost"]);
  }
  document.getElementById("root").innerHTML = h;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString() + " (every 2 s)";
}
async function poll() {
  try { const r = await fetch("/api/state", {cache: "no-store"}); render(await r.json()); }
  catch (err) { document.getElementById("updated").textContent = "server not reachable: " + err; }
  setTimeout(poll, 2000);
}
poll();
</script></body></html>
"""
