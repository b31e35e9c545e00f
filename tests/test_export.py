"""``carbs-like export``: every trial, in each status, as CSV and versioned JSON, read-only."""

from __future__ import annotations

import csv
import io
import json

import pytest

from carbs_like import LinearParam, LogParam, SearchSpace, Tuner
from carbs_like.cli.experiment import Experiment
from carbs_like.cli.main import main
from carbs_like.journal import JOURNAL_FILE


@pytest.fixture()
def live_experiment(tmp_path):
    """An experiment whose tuner still holds its journal: ok, failed, forgotten, added and pending trials."""
    space = SearchSpace([LogParam("n_params", min=1e5, max=1e7), LinearParam("x", min=0.0, max=1.0)],
                        scaling=["n_params"])
    Experiment(space=space.to_dict(), trainable="toy:train", trials=10).save(tmp_path)
    tuner = Tuner(space, seed=3, path=tmp_path / "journal")
    a, b, c, d = (tuner.ask() for _ in range(4))
    tuner.tell(a, loss=2.5, cost=10.0, metadata={"seconds": 1.5})
    tuner.tell(b, loss=None, cost=3.0, failed=True, metadata={"error": "OOM"})
    tuner.forget(c)
    tuner.add({"n_params": 2e6, "x": 0.25}, loss=2.0, cost=40.0)
    yield tmp_path, tuner, (a, b, c, d)
    tuner.close()


def test_json_export_has_every_trial_with_its_status(live_experiment, capsys):
    folder, _tuner, (a, b, _c, d) = live_experiment
    journal = folder / "journal" / JOURNAL_FILE
    before = journal.read_bytes()
    assert main(["export", str(folder), "--json"]) == 0  # while the tuner holds the journal
    data = json.loads(capsys.readouterr().out)
    assert (data["format"], data["version"]) == ("carbs_like.export", 1)
    assert data["params"] == ["n_params", "x"]
    rows = {r["trial_id"]: r for r in data["trials"]}
    assert [r["trial_id"] for r in data["trials"]] == [0, 1, 2, 3, 4]
    assert {i: r["status"] for i, r in rows.items()} == {0: "ok", 1: "failed", 2: "forgotten", 3: "pending", 4: "ok"}
    assert rows[a.id]["loss"] == 2.5 and rows[a.id]["cost"] == 10.0
    assert rows[a.id]["config"] == a.config
    assert rows[a.id]["metadata"] == {"seconds": 1.5}
    assert rows[a.id]["trial_metadata"]["source"] == a.metadata["source"]
    assert rows[b.id]["loss"] is None and rows[b.id]["metadata"] == {"error": "OOM"}
    assert rows[d.id]["loss"] is None and rows[d.id]["cost"] is None and rows[d.id]["config"] == d.config
    assert rows[4]["trial_metadata"] == {"source": "add"} and rows[4]["config"] == {"n_params": 2e6, "x": 0.25}
    assert journal.read_bytes() == before  # read-only
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.json", "journal"]


def test_csv_export_round_trips_configs_and_losses(live_experiment, capsys):
    folder, _tuner, (a, *_rest) = live_experiment
    assert main(["export", str(folder)]) == 0  # CSV is the default
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["trial_id", "status", "n_params", "x", "loss", "cost", "trial_metadata", "metadata"]
    assert len(rows) == 5
    first = rows[0]
    assert float(first["n_params"]) == a.config["n_params"] and float(first["x"]) == a.config["x"]
    assert float(first["loss"]) == 2.5 and json.loads(first["metadata"]) == {"seconds": 1.5}
    assert rows[3]["status"] == "pending" and rows[3]["loss"] == "" and rows[3]["cost"] == ""


def test_export_to_a_file_and_bad_paths(live_experiment, tmp_path, capsys):
    folder, _tuner, _ = live_experiment
    out = tmp_path / "out" / "trials.json"
    assert main(["export", str(folder), "--json", "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["trials"]) == 5
    assert "wrote 5 trials" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carbs-like: error:") and "not an experiment folder" in err and "\n" not in err
    with pytest.raises(SystemExit):  # argparse: --csv and --json exclude each other
        main(["export", str(folder), "--csv", "--json"])
