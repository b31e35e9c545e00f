"""``carbs-like serve``: the JSON follows a running search, the server never writes, bad input is
one line; and, where Chromium is installed, the page itself shows a new trial without a reload."""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from carbs_like import LinearParam, LogParam, SearchSpace, Tuner
from carbs_like.cli.experiment import Experiment
from carbs_like.cli.main import main
from carbs_like.cli.serve import importance, make_server


@pytest.fixture()
def search(tmp_path):
    """A parent folder with a running search (the tuner holds its journal) and an empty experiment."""
    space = SearchSpace([LogParam("n_params", min=1e5, max=1e7), LinearParam("x", min=0.0, max=1.0)],
                        scaling=["n_params"])
    folder = tmp_path / "runs" / "alpha"
    folder.mkdir(parents=True)
    Experiment(space=space.to_dict(), trainable="toy:train", trials=10, budget=100.0).save(folder)
    Experiment(space=space.to_dict(), trainable="toy:train").save(tmp_path / "runs" / "empty")
    tuner = Tuner(space, seed=0, path=folder / "journal")
    for i in range(3):
        tuner.tell(tuner.ask(), loss=2.0 - 0.1 * i, cost=1.0 + i)
    tuner.ask()  # running
    yield tmp_path / "runs", folder, tuner
    tuner.close()


@pytest.fixture()
def server(search):
    srv = make_server(search[0], port=0, n_bootstrap=2)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def fetch(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_json_follows_the_search_and_the_server_writes_nothing(search, server):
    parent, _folder, tuner = search
    _, url = server
    before = snapshot(parent)
    state = fetch(url + "/api/state")
    assert (state["format"], state["version"]) == ("carbs_like.live", 1)
    alpha, empty = state["experiments"]
    assert (alpha["name"], empty["name"]) == ("alpha", "empty")
    assert "no finished trials yet" in empty["error"]
    assert alpha["counts"] == {"pending": 1, "ok": 3, "failed": 0, "forgotten": 0}
    assert alpha["spent"] == 6.0 and alpha["budget"] == 100.0
    assert [t["trial_id"] for t in alpha["trials"]] == [0, 1, 2, 3]
    assert alpha["front"] and "no proposal yet" in alpha["proposal"]["error"]
    # The search goes on: the running trial finishes and a failed one arrives.
    tuner.tell(3, loss=1.5, cost=4.0)
    tuner.tell(tuner.ask(), loss=None, cost=0.5, failed=True)
    alpha = fetch(url + "/api/state")["experiments"][0]
    assert alpha["counts"] == {"pending": 0, "ok": 4, "failed": 1, "forgotten": 0}
    assert alpha["trials"][3]["loss"] == 1.5 and alpha["trials"][4]["status"] == "failed"
    assert alpha["spent"] == 10.5
    page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
    assert "/api/state" in page and "http" not in page.split("<script>")[1]  # no external scripts
    # Only the tuner wrote (its own events), and the experiment's other files are untouched.
    after = snapshot(parent)
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in before if k.name != "journal.jsonl")


def test_bad_path_and_port_in_use_are_one_line(search, capsys):
    parent, _, _ = search
    assert main(["serve", str(parent / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carbs-like: error:") and "no such folder" in err and "\n" not in err
    assert main(["serve", str(parent / "alpha" / "journal")]) == 2
    assert "no experiment here" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(parent), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"carbs-like: error: port {port} on 127.0.0.1 is in use; pick another with --port"


def test_importance_is_the_share_of_inverse_lengthscales():
    space = SearchSpace([LogParam("a", min=1, max=10), LinearParam("b", min=0.0, max=1.0)])
    raw = [0.5413248546129181, 2.0]  # softplus: 1.0, ~2.127
    share = importance({"loss": {"covar_module.raw_lengthscale": raw}}, space)
    assert share["a"] == pytest.approx(1 / (1 + 1 / 2.126928), rel=1e-5) and sum(share.values()) == pytest.approx(1)
    assert importance(None, space) is None and importance({"loss": {}}, space) is None


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_headless_chromium_shows_a_new_trial_without_a_reload(search, server):
    _, _folder, tuner = search
    srv, url = server

    def add_a_trial_once_the_page_polled() -> None:
        deadline = time.time() + 60
        while srv.live.requests < 1 and time.time() < deadline:
            time.sleep(0.05)
        tuner.tell(3, loss=1.4, cost=2.5)
        tuner.tell(tuner.ask(), loss=1.3, cost=3.5)

    helper = threading.Thread(target=add_a_trial_once_the_page_polled)
    helper.start()
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
         "--dump-dom", url + "/"], check=False, capture_output=True, text=True, timeout=120,
    ).stdout
    helper.join()
    assert srv.live.requests >= 2  # the page polled again
    counts = re.search(r'class="counts" data-first-trials="(\d+)" data-trials="(\d+)"', dom)
    assert counts, dom[:2000]
    assert (int(counts[1]), int(counts[2])) == (4, 5)  # one page load: 4 trials first, then 5
    assert "1 running or asked ahead" not in dom and "0 running or asked ahead, 5 done" in dom
    assert dom.split("<script>")[0].count('class="trial"') == 5  # the points drawn, not the script's text
    body = dom.split("<script>")[0]
    assert body.count('class="pline"') == 5  # parallel coordinates: one line per finished trial


@pytest.fixture()
def law_search(tmp_path):
    """A finished search in which the best lr falls as n_params^-0.5 (the scaling law can fit it)."""
    space = SearchSpace([LogParam("n_params", min=1e5, max=1e7), LogParam("lr", min=1e-4, max=1e-1)],
                        scaling=["n_params"])
    folder = tmp_path / "beta"
    folder.mkdir()
    Experiment(space=space.to_dict(), trainable="toy:train", trials=40).save(folder)
    tuner = Tuner(space, seed=0, path=folder / "journal")
    for _ in range(24):
        t = tuner.ask()
        n, lr = t.config["n_params"], t.config["lr"]
        tuner.tell(t, loss=3.0 * (n / 1e5) ** -0.1 * (1 + 0.2 * math.log(lr / (3e-2 * (n / 1e5) ** -0.5)) ** 2), cost=n)
    tuner.close()
    return folder


def test_the_json_has_the_relations_with_their_bands(law_search):
    srv = make_server(law_search, port=0, n_bootstrap=4)
    state = srv.live.state()
    srv.server_close()
    (exp,) = state["experiments"]
    assert all(len(r["search"]) == 2 for r in exp["trials"])
    (rel,) = exp["proposal"]["relations"]
    assert (rel["param"], rel["axis"]) == ("lr", "n_params")
    assert rel["points"] and all(math.isfinite(p["x"]) and math.isfinite(p["y"]) for p in rel["points"])
    assert all(lo <= c <= hi for lo, c, hi in zip(rel["lower"], rel["curve"], rel["upper"]))
    assert rel["proposal"]["x"] == pytest.approx(exp["proposal"]["target"]["n_params"])
    assert rel["determined"] is True and isinstance(rel["uncertain"], bool)
    json.dumps(rel, allow_nan=False)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_headless_chromium_draws_the_relations_and_parallel_coordinates(law_search):
    srv = make_server(law_search, port=0, n_bootstrap=4)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
             "--dump-dom", f"http://127.0.0.1:{srv.server_address[1]}/"],
            check=False, capture_output=True, text=True, timeout=120,
        ).stdout
    finally:
        srv.shutdown()
        srv.server_close()
    body = dom.split("<script>")[0]
    assert body.count('class="relation"') == 1 and body.count('class="band"') == 1, body[:2000]
    assert "exponent -0.5" in body and body.count('class="pline"') == 24
    assert body.count('class="meter"') == 1  # the trials bar; this experiment has no budget
