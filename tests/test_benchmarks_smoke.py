"""The benchmark harness runs end to end and writes its report (the numbers are not checked)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("matplotlib")

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.report import hypervolume_2d  # noqa: E402

import numpy as np  # noqa: E402

# Every method whose package is installed (the peers are the optional [bench] extra).
FAST = ["carbs_like", "random"]
FAST += ["optuna_tpe", "optuna_gp"] if importlib.util.find_spec("optuna") else []
FAST += ["ax"] if importlib.util.find_spec("ax") else []


def test_smoke_suite_writes_table_plots_and_raw_results(tmp_path):
    assert bench_run.main(["--suite", "smoke", "--out", str(tmp_path), "--methods", ",".join(FAST)]) == 0

    table = (tmp_path / "results_smoke.md").read_text()
    for section in ("Cost-aware LLM landscapes", "BoTorch test functions", "Ask latency"):
        assert section in table
    for method in FAST:
        assert f"| {method} |" in table
    for png in ("fronts_llm_default.png", "gap_llm_default.png", "best_so_far.png", "latency.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png

    raw = json.loads((tmp_path / "raw_smoke.json").read_text())
    suite = bench_run.SUITES["smoke"]
    n_searches = len(suite.seeds) * len(FAST) * (len(suite.landscapes) + len(suite.functions))
    n_latency = len([m for m in FAST if m in bench_run.MODEL_BASED]) * len(suite.latency_observations)
    assert len(raw["runs"]) == n_searches + n_latency
    histories = [r["history"] for k, r in raw["runs"].items() if not k.startswith("latency/")]
    assert all(len(h) in (max(suite.checkpoints), *dict(suite.functions).values()) for h in histories)


def test_rerun_keeps_saved_runs_and_report_only_rebuilds(tmp_path):
    args = ["--suite", "smoke", "--out", str(tmp_path), "--methods", "random"]
    bench_run.main(args)
    before = json.loads((tmp_path / "raw_smoke.json").read_text())["runs"]
    (tmp_path / "results_smoke.md").unlink()
    bench_run.main(args)  # nothing left to run: the saved runs are kept unchanged
    assert json.loads((tmp_path / "raw_smoke.json").read_text())["runs"] == before
    bench_run.main([*args, "--report-only"])
    assert (tmp_path / "results_smoke.md").exists()


def test_hypervolume_of_a_staircase_is_the_area_under_it():
    ref = (4.0, 4.0)
    pts = np.array([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0], [3.5, 3.5]])  # the last is dominated
    assert hypervolume_2d(pts, ref) == pytest.approx(1 * 1 + 2 * 1 + 3 * 1)
    assert hypervolume_2d(np.array([[5.0, 1.0]]), ref) == 0.0  # beyond the reference point


def test_time_limit_interrupts_a_slow_ask_and_leaves_no_alarm_behind():
    import time

    with pytest.raises(bench_run.AskTimeout):
        with bench_run.time_limit(0.2):
            while True:
                sum(range(1000))
    with bench_run.time_limit(5.0):
        pass
    time.sleep(0.05)  # an alarm left armed would fire here
