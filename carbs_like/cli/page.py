"""The live page of ``carbs-like serve``: one HTML template with plain JavaScript (no external
script) that polls ``/api/state`` and draws it as SVG."""

__all__ = ["PAGE"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>carbs-like live</title>
<style>body{font:13px sans-serif;margin:16px;color:#222}h2{margin:18px 0 4px}table{border-collapse:collapse}
td,th{padding:1px 6px;border-bottom:1px solid #eee;text-align:right}.err{color:#a00}svg{background:#fafafa}
.bar{background:#4a7;height:10px;display:inline-block}
.meter{display:inline-block;width:300px;height:12px;background:#eee;margin:2px 6px 2px 0;vertical-align:middle}.meter span{display:inline-block;height:12px}</style></head><body>
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
function relation(r) {
  const W = 260, H = 170, P = 34, lx = v => Math.log10(v), ly = v => r.log_y ? Math.log10(v) : v;
  const xs = r.x.map(lx).concat(r.points.map(q => lx(q.x))), ys = r.lower.concat(r.upper, r.points.map(q => q.y)).map(ly);
  if (r.proposal) { xs.push(lx(r.proposal.x)); ys.push(ly(r.proposal.y)); }
  const x0 = Math.min(...xs), x1 = Math.max(...xs) + 1e-9, y0 = Math.min(...ys), y1 = Math.max(...ys) + 1e-9;
  const X = v => P + (lx(v) - x0) / (x1 - x0) * (W - 2 * P), Y = v => H - P - (ly(v) - y0) / (y1 - y0) * (H - 2 * P);
  let s = `<svg class="relation" width="${W}" height="${H}"><text x="${W/2 - 20}" y="${H-4}">${esc(r.axis)}</text><text x="2" y="12">best ${esc(r.param)}</text>`;
  s += `<text x="2" y="${H-P}" font-size="10">${fmt(r.log_y ? 10 ** y0 : y0)}</text><text x="2" y="${P}" font-size="10">${fmt(r.log_y ? 10 ** y1 : y1)}</text>`;
  s += `<rect x="${X(r.largest)}" y="${P}" width="${Math.max(0, W - P - X(r.largest))}" height="${H - 2 * P}" fill="#eee"/>`;
  if (r.determined) s += `<polygon class="band" fill="#9ecae1" fill-opacity="0.6" points="${r.x.map((x, i) => X(x) + "," + Y(r.upper[i])).concat(r.x.map((x, i) => X(x) + "," + Y(r.lower[i])).reverse()).join(" ")}"/>`;
  s += `<polyline fill="none" stroke="#1f4e79" stroke-width="1.8"${r.determined ? "" : ' stroke-dasharray="3,3"'} points="${r.x.map((x, i) => X(x) + "," + Y(r.curve[i])).join(" ")}"/>`;
  r.x.forEach((x, i) => { if (r.clamped[i]) s += `<circle cx="${X(x)}" cy="${Y(r.curve[i])}" r="1.5" fill="#e67e22"/>`; });
  for (const q of r.points) s += `<circle cx="${X(q.x)}" cy="${Y(q.y)}" r="3" fill="#555" fill-opacity="0.6"><title>${esc(`${r.axis} ${fmt(q.x)}: ${r.param} ${fmt(q.y)} (${(100 * q.excess).toFixed(1)}% over optimum)`)}</title></circle>`;
  if (r.proposal) s += `<text x="${X(r.proposal.x) - 6}" y="${Y(r.proposal.y) + 5}" fill="${r.proposal.clamped ? "#e67e22" : "#c0392b"}" font-size="16">*<title>proposal ${fmt(r.proposal.y)}${r.proposal.clamped ? " (clamped to the param's bound)" : ""}</title></text>`;
  const what = r.determined ? `exponent ${r.slope.toFixed(3)} ± ${r.slope_std.toFixed(3)}${r.uncertain ? ": sign not determined" : ""}` : "not determined: held constant";
  return s + `<text x="${P}" y="${P - 6}" font-size="11">${what}${r.proposal && r.proposal.clamped ? "; proposal clamped" : ""}</text></svg>`;
}
function pcoords(e) {
  const ok = e.trials.filter(t => t.loss != null && t.search);
  if (!ok.length) return "";
  const W = 600, H = 220, P = 30, S = 50, names = e.params, n = names.length;
  const lo = names.map((_, j) => Math.min(...ok.map(t => t.search[j]))), hi = names.map((_, j) => Math.max(...ok.map(t => t.search[j])) + 1e-9);
  const l0 = Math.min(...ok.map(t => t.loss)), l1 = Math.max(...ok.map(t => t.loss)) + 1e-9;
  const X = j => S + j * (W - 2 * S) / Math.max(1, n - 1), Y = (v, j) => H - P - (v - lo[j]) / (hi[j] - lo[j]) * (H - 2 * P);
  let s = `<svg class="pcoords" width="${W}" height="${H}">`;
  names.forEach((k, j) => { s += `<line x1="${X(j)}" y1="${P}" x2="${X(j)}" y2="${H-P}" stroke="#999"/><text x="${X(j)}" y="${H-10}" text-anchor="middle">${esc(k)}</text>`; });
  for (const t of ok.slice().sort((a, b) => b.loss - a.loss)) {  // worst first: the best are drawn on top
    const q = (t.loss - l0) / (l1 - l0), col = `hsl(${(240 * q).toFixed(0)},70%,45%)`;
    s += `<polyline class="pline" fill="none" stroke="${col}" stroke-opacity="0.7" points="${t.search.map((v, j) => X(j) + "," + Y(v, j)).join(" ")}"><title>trial ${t.trial_id} loss ${fmt(t.loss)}</title></polyline>`;
  }
  return s + `<text x="${P}" y="14" font-size="11">search coordinates; red: lowest loss ${fmt(l0)}, blue: highest ${fmt(l1)}</text></svg>`;
}
const bar = (parts, total) => `<div class="meter">` + parts.map(([v, col, label]) => `<span title="${esc(label)}" style="background:${col};width:${(300 * Math.min(1, v / total)).toFixed(1)}px"></span>`).join("") + `</div>`;
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
    h += `<p><span class="counts" data-first-trials="${firstSeen[e.name]}" data-trials="${e.trials.length}">${c.pending} running or asked ahead, ${c.ok} done, ${c.failed} failed` + (c.forgotten ? ` (${c.forgotten} asks dropped unrun)` : "") + `</span>; ${esc(e.trainable)}; compute spent ${fmt(e.spent)}` + (e.budget ? ` of ${fmt(e.budget)} (${(100 * e.spent / e.budget).toFixed(0)}%)` : "") + `; limit ${e.trial_limit} trials</p>`;
    h += "<div>" + bar([[c.ok, "#4a7", "done"], [c.failed, "#c33", "failed"], [c.pending, "#fb3", "running or asked ahead"]], Math.max(1, e.trial_limit || 0, c.ok + c.failed + c.pending)) + `trials: done (green) / failed (red) / running or asked ahead (yellow) of ${e.trial_limit || "no limit"}</div>`;
    if (e.budget) h += "<div>" + bar([[e.spent, "#36c", "spent"]], e.budget) + `compute spent ${fmt(e.spent)} of the budget ${fmt(e.budget)}</div>`;
    h += plot(e);
    h += "<h3>trials in search coordinates (parallel coordinates)</h3>" + pcoords(e);
    const p = e.proposal;
    h += `<h3>proposal for ${p.target_is_set ? "the target" : "10x the largest run"}</h3>` + (p.error ? `<p>${esc(p.error)}</p>` :
      table(Object.entries(p.config).map(([k, v]) => ({param: k, value: v, low: (p.intervals[k] || [])[0], high: (p.intervals[k] || [])[1]})).concat([{param: "predicted loss", value: p.loss, low: p.loss_interval[0], high: p.loss_interval[1]}]), ["param", "value", "low", "high"]));
    if (!p.error && p.notes && p.notes.length) h += "<h3>warnings from the fit</h3><ul>" + p.notes.map(n => `<li class="note">${esc(n)}</li>`).join("") + "</ul>";
    if (!p.error && p.relations) h += "<h3>scaling relations (band: " + Math.round(100 * p.level) + "%; *: proposal)</h3><div>" + p.relations.map(relation).join("") + "</div>";
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
