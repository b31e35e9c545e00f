"""``Tuner.enqueue`` (Optuna's ``enqueue_trial``): the next asks return the enqueued configs, in
order, checked and rounded; journaled, so resume, load and every cut of the journal keep the queue."""

from __future__ import annotations

import json

import pytest

from carbs_like import LinearParam, LogParam, SearchSpace, Tuner
from carbs_like.journal import JOURNAL_FILE, JournalError


def make_space() -> SearchSpace:
    return SearchSpace([LogParam("n_params", min=1e5, max=1e7), LogParam("batch", min=1, max=1024, integer=True),
                        LinearParam("x", min=0.0, max=1.0)], scaling=["n_params"])


FIRST = {"n_params": 2e6, "batch": 12.4, "x": 0.25}
SECOND = {"n_params": 3e5, "batch": 64, "x": 0.9}


def test_the_next_asks_return_the_enqueued_configs_in_order_then_the_search_goes_on():
    tuner, plain = Tuner(make_space(), seed=1), Tuner(make_space(), seed=1)
    tuner.enqueue(FIRST)
    tuner.enqueue(SECOND)
    assert tuner.queued == [{**FIRST, "batch": 12}, SECOND]
    a, b, c = tuner.ask(), tuner.ask(), tuner.ask()
    assert a.config == {**FIRST, "batch": 12} and isinstance(a.config["batch"], int)
    assert b.config == SECOND
    assert a.metadata == b.metadata == {"source": "enqueued"}
    assert tuner.queued == [] and c.metadata["source"] != "enqueued"
    # Enqueued asks draw nothing from the tuner's random streams: its first suggestion is the plain one's.
    assert c.config == plain.ask().config
    tuner.tell(a, loss=1.0, cost=2.0)
    assert tuner.observations()["loss"].tolist() == [1.0]


@pytest.mark.parametrize(("config", "error"), [
    ({"n_params": 2e6, "batch": 12}, "missing param"),
    ({**SECOND, "y": 1.0}, "unknown param"),
    ({**SECOND, "x": 3.0}, "x"),
])
def test_a_bad_config_is_refused_and_nothing_is_journaled(tmp_path, config, error):
    tuner = Tuner(make_space(), seed=1, path=tmp_path)
    before = (tmp_path / JOURNAL_FILE).read_bytes()
    with pytest.raises(ValueError, match=error):
        tuner.enqueue(config)
    assert tuner.queued == [] and (tmp_path / JOURNAL_FILE).read_bytes() == before
    tuner.close()


def test_every_cut_of_the_journal_rebuilds_the_queue_and_the_next_ask(tmp_path):
    folder = tmp_path / "sweep"
    tuner = Tuner(make_space(), seed=2, path=folder)
    states = [tuner.state_dict()]
    steps = [lambda: tuner.enqueue(FIRST), tuner.ask, lambda: tuner.enqueue(SECOND), tuner.ask,
             lambda: tuner.tell(0, loss=1.5, cost=3.0), lambda: tuner.enqueue(FIRST)]
    for step in steps:
        step()
        states.append(tuner.state_dict())
    tuner.close()
    lines = (folder / JOURNAL_FILE).read_bytes().splitlines(keepends=True)
    assert len(lines) == len(steps) + 1  # the header, then one event per verb
    for k in range(1, len(lines) + 1):
        cut = tmp_path / f"cut{k}"
        cut.mkdir()
        (cut / JOURNAL_FILE).write_bytes(b"".join(lines[:k]))
        read = Tuner.read(cut)
        assert read.state_dict() == states[k - 1], f"cut after {k} lines"
        expected = Tuner.from_state_dict(states[k - 1])
        assert read.ask().to_dict() == expected.ask().to_dict()
    resumed = Tuner.resume(folder)
    assert resumed.queued == [{**FIRST, "batch": 12}]
    assert resumed.ask().metadata == {"source": "enqueued"}
    resumed.close()


def test_save_and_load_keep_the_queue_and_older_checkpoints_load(tmp_path):
    tuner = Tuner(make_space(), seed=1)
    tuner.enqueue(SECOND)
    loaded = Tuner.load(tuner.save(tmp_path / "t.json"))
    assert loaded.queued == [SECOND] and loaded.ask().config == SECOND
    old = Tuner(make_space(), seed=1).state_dict()
    del old["queue"]  # a checkpoint written before enqueue existed
    assert Tuner.from_state_dict(old).queued == []
    bad = {**old, "queue": [{"n_params": 2e6}]}
    with pytest.raises(ValueError, match=r"queue\[0\].*missing param"):
        Tuner.from_state_dict(bad)


def test_an_enqueued_ask_that_does_not_match_the_queue_is_a_corrupt_journal(tmp_path):
    tuner = Tuner(make_space(), seed=1, path=tmp_path)
    tuner.enqueue(FIRST)
    tuner.ask()
    tuner.close()
    file = tmp_path / JOURNAL_FILE
    lines = file.read_text().splitlines()
    ask = json.loads(lines[2])
    ask["trial"]["config"]["x"] = 0.5
    file.write_text("\n".join([*lines[:2], json.dumps(ask)]) + "\n")
    with pytest.raises(JournalError, match="line 3.*not the next enqueued config"):
        Tuner.resume(tmp_path)


# ------------------------------------------------------------------------ carbs-like tune --enqueue --
TOY = '''
def train(config):
    return {"loss": 1.0 + config["lr"] * 100 + 1e3 / config["n_params"], "cost": config["n_params"] / 1e6}
'''


def test_tune_runs_the_enqueued_configs_first_and_not_again_on_resume(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from carbs_like.cli.main import main

    tiny_lm = Path(__file__).resolve().parent.parent / "searchspaces" / "tiny_lm.toml"
    (tmp_path / "toy_enq.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    space = SearchSpace.from_file(tiny_lm)
    configs = space.to_configs(space.sobol(2, seed=5))
    (tmp_path / "first.jsonl").write_text("".join(json.dumps(c) + "\n" for c in configs))
    args = ["tune", str(tiny_lm), "--trainable", "toy_enq:train", "--backend", "local", "--concurrency", "1",
            "--path", "runs/enq", "--enqueue", "first.jsonl"]
    assert main([*args, "--trials", "3"]) == 0
    assert "enqueued 2 config(s) from first.jsonl" in capsys.readouterr().out
    tuner = Tuner.read(tmp_path / "runs" / "enq" / "journal")
    assert [t.config for t in tuner.trials[:2]] == configs
    assert [t.metadata["source"] for t in tuner.trials[:3]] == ["enqueued", "enqueued", "sobol"]
    assert main([*args, "--trials", "4"]) == 0  # the same file again: nothing enqueued twice
    assert "enqueued 0 config(s) from first.jsonl (2 already run or queued)" in capsys.readouterr().out
    tuner = Tuner.read(tmp_path / "runs" / "enq" / "journal")
    assert tuner.n_observations == 4  # (asked-ahead trials the local backend forgot are trials too)
    assert sum(t.metadata["source"] == "enqueued" for t in tuner.trials) == 2
    # A bad entry is one line naming it, and the experiment is left as it was.
    (tmp_path / "bad.json").write_text(json.dumps([configs[0], {"lr": 1e-3}]))
    assert main([*args[:-1], "bad.json", "--trials", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("carbs-like: error: --enqueue bad.json: entry 1:") and "missing" in err and "\n" not in err
    assert Tuner.read(tmp_path / "runs" / "enq" / "journal").state_dict() == tuner.state_dict()
