"""The carbs-like command: one-line errors, status/report/propose/verify on a small experiment
folder, and tune that resumes after an interruption (local backend; Ray is tested in test_ray.py)."""

from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from carbs_like.cli.experiment import Experiment, UsageError, save_snapshot
from carbs_like.cli.main import main
from carbs_like.cli.run import front_size, normalise_result
from carbs_like.space import SearchSpace
from carbs_like.tuner import Tuner

REPO = Path(__file__).resolve().parent.parent
TINY_LM = REPO / "searchspaces" / "tiny_lm.toml"

# A trainable with a planted law: lr* shrinks with model size; cost = FLOPs / 1e9.
TOY = textwrap.dedent(
    """
    import math, os
    from pathlib import Path

    def loss_of(c):
        n, d = c["n_params"], c["tokens"]
        lr_star = 3e-3 * (n / 1e5) ** -0.5
        return (1.0 + 30 / n ** 0.3 + 40 / d ** 0.3 + 0.05 * math.log(c["lr"] / lr_star) ** 2
                + 0.01 * math.log(c["weight_decay"] / 0.1) ** 2)

    def train(config):
        return {"loss": loss_of(config), "cost": 6 * config["n_params"] * config["tokens"] / 1e9}

    def train_then_interrupt(config):
        # The 3rd trial "presses Ctrl-C": the driver stops, and a rerun resumes.
        counter = Path("calls.txt")
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        if calls == 3:
            raise KeyboardInterrupt
        return train(config)

    def diverges(config):
        return {"loss": float("nan"), "cost": 1.0, "failed": True}

    def no_loss(config):
        return {"loss": None, "cost": 2.0}
    """
)


@pytest.fixture()
def toy_dir(tmp_path, monkeypatch):
    (tmp_path / "toy_trainable.py").write_text(TOY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("carbs-like: error: ")
    return err


# ------------------------------------------------------------------------ search spaces -------
@pytest.mark.parametrize("name", ["tiny_lm", "tiny_lm_mup", "llm_pretrain", "vision_resnet", "rl_ppo"])
def test_search_space_files_load_with_scaling_axes_and_comments(name):
    file = REPO / "searchspaces" / f"{name}.toml"
    space = SearchSpace.from_file(file)
    assert len(space.scaling) >= 1 and len(space) > len(space.scaling)
    assert file.read_text().lstrip().startswith("#")  # says where its ranges come from
    config = space.to_configs(space.sobol(1, seed=0))[0]
    assert space.validate(config) == config


def test_llm_pretrain_has_the_issue_params():
    space = SearchSpace.from_file(REPO / "searchspaces" / "llm_pretrain.toml")
    assert {"n_params", "tokens", "lr", "batch_size", "weight_decay", "warmup", "schedule"} <= set(space.names)


# ------------------------------------------------------------------------ errors --------------
def test_bad_space_key_is_one_line_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_LM.read_text().replace("center = 3e-3", "centre = 3e-3"))
    assert main(["tune", str(bad), "--trainable", "carbs_like.tinylm:train", "--path", str(tmp_path / "r")]) == 2
    err = _one_line_error(capsys)
    assert "'lr'" in err and "centre" in err


def test_unknown_top_level_key_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_LM.read_text().replace("scaling = ", "scalling = "))
    assert main(["tune", str(bad), "--trainable", "carbs_like.tinylm:train"]) == 2
    assert "scalling" in _one_line_error(capsys)


def test_unimportable_trainable_is_one_line_naming_the_module(toy_dir, capsys):
    assert main(["tune", str(TINY_LM), "--trainable", "no_such_module_xyz:train"]) == 2
    assert "no_such_module_xyz" in _one_line_error(capsys)
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:nope"]) == 2
    err = _one_line_error(capsys)
    assert "nope" in err and "train" in err  # names what the module does have
    assert main(["tune", str(TINY_LM), "--trainable", "carbs_like.tinylm:trian"]) == 2
    err = _one_line_error(capsys)  # a module that re-exports: its functions, not its imports
    assert "did you mean carbs_like.tinylm:train?" in err and "torch" not in err
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable"]) == 2
    assert "module:function" in _one_line_error(capsys)


def test_debug_shows_the_traceback(toy_dir):
    with pytest.raises(UsageError, match="no_such_module_xyz"):
        main(["--debug", "tune", str(TINY_LM), "--trainable", "no_such_module_xyz:train"])


def test_status_of_a_folder_that_is_no_experiment(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not an experiment folder" in _one_line_error(capsys)


def test_result_normalisation():
    ok = normalise_result({"loss": 2.5, "cost": 3.0, "extra": [1]}, metric="loss", cost="cost", seconds=9.0)
    assert ok["loss"] == 2.5 and ok["cost"] == 3.0 and not ok["failed"] and "extra" not in ok
    nan = normalise_result({"loss": float("nan")}, metric="loss", cost="cost", seconds=9.0)
    assert nan["failed"] and math.isnan(nan["loss"]) and nan["cost"] == 9.0  # no cost: wall seconds
    flagged = normalise_result({"loss": 2.0, "cost": 1.0, "failed": True}, metric="loss", cost="cost", seconds=1)
    assert flagged["failed"] and math.isnan(flagged["loss"])
    with pytest.raises(KeyError, match="val_loss"):
        normalise_result({"loss": 1.0}, metric="val_loss", cost="cost", seconds=1.0)


def test_front_size_matches_the_tuners_front():
    rng = np.random.default_rng(0)
    space = SearchSpace.from_file(TINY_LM)
    tuner = Tuner(space, seed=0)
    points = []
    for config in space.to_configs(space.sobol(30, seed=1)):
        loss, cost = float(rng.uniform(1, 3)), float(rng.uniform(1, 100))
        tuner.add(config, loss=loss, cost=cost)
        points.append((cost, loss))
    assert front_size(points) == len(tuner.pareto_front())


# ------------------------------------------------------------------------ a small experiment --
def _toy_loss(config):
    n, d = config["n_params"], config["tokens"]
    lr_star = 3e-3 * (n / 1e5) ** -0.5
    return (1.0 + 30 / n**0.3 + 40 / d**0.3 + 0.05 * math.log(config["lr"] / lr_star) ** 2
            + 0.01 * math.log(config["weight_decay"] / 0.1) ** 2)


@pytest.fixture(scope="module")
def experiment_dir(tmp_path_factory):
    """An experiment folder made quickly: 48 runs of the toy imported with Tuner.add."""
    folder = tmp_path_factory.mktemp("exp")
    (folder / "toy_trainable.py").write_text(TOY)
    space = SearchSpace.from_file(TINY_LM)
    tuner = Tuner(space, seed=0)
    for config in space.to_configs(space.sobol(48, seed=1)):
        tuner.add(config, loss=_toy_loss(config), cost=6 * config["n_params"] * config["tokens"] / 1e9)
    Experiment(space=space.to_dict(), trainable="toy_trainable:train", trials=48).save(folder)
    save_snapshot(tuner, folder)
    return folder


def test_status_shows_trials_front_and_best(experiment_dir, capsys):
    assert main(["status", str(experiment_dir), "--all"]) == 0
    out = capsys.readouterr().out
    tuner = Tuner.load(experiment_dir / "tuner.json")
    best = tuner.observations()["loss"].min()
    assert "48 trials (48 ok, 0 failed)" in out
    assert f"best loss {best:.4f}" in out
    front = out.split("front (lower loss for lower cost):")[1].split("trials:")[0]
    assert len([line for line in front.strip().splitlines()[1:] if line.strip()]) == len(tuner.pareto_front())


def test_propose_prints_every_param_with_the_target_size(experiment_dir, capsys):
    assert main(["propose", str(experiment_dir), "--n-params", "2e6", "--tokens", "1e7", "--json",
                 "--bootstrap", "2"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[out.index("{"):])
    assert set(config) == set(SearchSpace.from_file(TINY_LM).names)
    assert config["n_params"] == pytest.approx(2e6) and config["tokens"] == pytest.approx(1e7)
    assert "predicted loss" in out


def test_propose_for_a_budget_and_its_errors(experiment_dir, capsys):
    assert main(["propose", str(experiment_dir), "--cost", "1e5", "--bootstrap", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"n_params\s+[0-9.e+]+", out)
    assert main(["propose", str(experiment_dir), "--n-param", "1e6"]) == 2
    assert "--n-params, --tokens" in _one_line_error(capsys)
    assert main(["propose", str(experiment_dir)]) == 2
    assert "--cost" in _one_line_error(capsys)


def test_report_writes_pngs_and_one_self_contained_html(experiment_dir, capsys):
    assert main(["report", str(experiment_dir), "--bootstrap", "2"]) == 0
    report = experiment_dir / "report"
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert {"front.png", "history.png", "relations.png"} <= set(pngs)
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert not re.search(r"src=['\"](?!data:)", page)  # no image loaded from a file
    for png in pngs:
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (report / png).with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    assert "Best configs" in page and "Pareto front" in page


def test_verify_trains_the_proposal_and_perturbations(experiment_dir, capsys, monkeypatch):
    monkeypatch.chdir(experiment_dir)
    monkeypatch.syspath_prepend(str(experiment_dir))
    assert main(["verify", str(experiment_dir), "--n-params", "4e5", "--tokens", "2e6", "--dry-run",
                 "--bootstrap", "2"]) == 0
    plan = capsys.readouterr().out
    assert "predicted cost" in plan and not (experiment_dir / "verify.json").exists()
    assert main(["verify", str(experiment_dir), "--n-params", "4e5", "--tokens", "2e6", "--bootstrap", "2"]) == 0
    record = json.loads((experiment_dir / "verify.json").read_text())
    labels = [r["label"] for r in record["runs"]]
    assert labels == ["proposal", "lr x0.5", "lr x2"]
    losses = {r["label"]: r["loss"] for r in record["runs"]}
    best = min(losses, key=losses.get)
    assert ("proposal was best" in record["verdict"]) == (best == "proposal")
    runs = {r["label"]: r["config"] for r in record["runs"]}
    assert runs["lr x2"]["lr"] == pytest.approx(2 * runs["proposal"]["lr"])
    # Another factor at the same target: the proposal is not trained again, the earlier runs stay.
    log = experiment_dir / "verify_runs.jsonl"
    assert len(log.read_text().splitlines()) == 3
    assert main(["verify", str(experiment_dir), "--n-params", "4e5", "--tokens", "2e6", "--bootstrap", "2",
                 "--factors", "0.25"]) == 0
    again = json.loads((experiment_dir / "verify.json").read_text())
    assert sorted(r["label"] for r in again["runs"]) == ["lr x0.25", "lr x0.5", "lr x2", "proposal"]
    assert len(log.read_text().splitlines()) == 4  # only lr x0.25 was trained
    # Another target, then the first again: nothing is lost, nothing is trained twice.
    assert main(["verify", str(experiment_dir), "--n-params", "3e5", "--tokens", "2e6", "--bootstrap", "2",
                 "--factors", "2"]) == 0
    assert json.loads((experiment_dir / "verify.json").read_text())["target"]["n_params"] == pytest.approx(3e5)
    assert len(log.read_text().splitlines()) == 6
    assert main(["verify", str(experiment_dir), "--n-params", "4e5", "--tokens", "2e6", "--bootstrap", "2"]) == 0
    back = json.loads((experiment_dir / "verify.json").read_text())
    assert len(log.read_text().splitlines()) == 6
    assert sorted(r["label"] for r in back["runs"]) == ["lr x0.25", "lr x0.5", "lr x2", "proposal"]
    # Two perturbations that round to the proposal's own config share its result, not its label.
    assert main(["verify", str(experiment_dir), "--n-params", "4e5", "--tokens", "2e6", "--bootstrap", "2",
                 "--params", "batch_size", "--factors", "1.01"]) == 0
    same = json.loads((experiment_dir / "verify.json").read_text())
    labels = [r["label"] for r in same["runs"]]
    assert labels[:2] == ["proposal", "batch_size x1.01"]
    assert "proposal was best" in same["verdict"] or "beat the proposal" in same["verdict"]
    assert "proposal failed" not in same["verdict"]


def test_an_interrupted_verify_keeps_its_finished_runs_and_resumes(experiment_dir, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    folder = tmp_path / "exp"
    shutil.copytree(experiment_dir, folder, ignore=shutil.ignore_patterns("verify*", "report"))
    experiment = Experiment.load(folder)
    dataclasses.replace(experiment, trainable="toy_trainable:train_then_interrupt").save(folder)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    args = ["verify", str(folder), "--n-params", "4e5", "--tokens", "2e6", "--bootstrap", "2"]
    assert main(args) == 130  # the third run "presses Ctrl-C"
    log = folder / "verify_runs.jsonl"
    assert [json.loads(line)["label"] for line in log.read_text().splitlines()] == ["proposal", "lr x0.5"]
    assert main(args) == 0  # trains only lr x2
    assert (folder / "calls.txt").read_text() == "4"
    assert [json.loads(line)["label"] for line in log.read_text().splitlines()] == ["proposal", "lr x0.5", "lr x2"]
    assert len(json.loads((folder / "verify.json").read_text())["runs"]) == 3


# ------------------------------------------------------------------------ tune + resume -------
def _observations(folder: Path) -> list[dict]:
    data = json.loads((folder / "tuner.json").read_text())
    return data["observations"]


def test_tune_local_runs_and_resumes_after_an_interruption(toy_dir, capsys):
    args = ["tune", str(TINY_LM), "--trainable", "toy_trainable:train_then_interrupt", "--backend", "local",
            "--concurrency", "1", "--path", "runs/toy"]
    assert main([*args, "--trials", "5"]) == 130  # the 3rd trial interrupts
    assert "interrupted" in capsys.readouterr().err
    first = _observations(toy_dir / "runs" / "toy")
    assert len(first) == 2
    assert main([*args, "--trials", "5"]) == 0
    out = capsys.readouterr().out
    assert "resuming at trial 2" in out
    final = _observations(toy_dir / "runs" / "toy")
    assert len(final) == 5
    assert final[:2] == first  # finished trials kept, none repeated
    assert len({json.dumps(o["config"], sort_keys=True) for o in final}) == 5
    # A finished experiment says so; more --trials continue it.
    assert main([*args, "--trials", "5"]) == 0
    assert "already reached 5 trials" in capsys.readouterr().out
    # Lowering --trials applies to that call only; the recorded limit stays.
    assert main([*args, "--trials", "3"]) == 0
    assert "already reached 3 trials" in capsys.readouterr().out
    assert Experiment.load(toy_dir / "runs" / "toy").trials == 5


def test_tune_records_failed_trials(toy_dir, capsys):
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:diverges", "--backend", "local",
                 "--trials", "2", "--path", "runs/fail"]) == 0
    obs = _observations(toy_dir / "runs" / "fail")
    assert [o["failed"] for o in obs] == [True, True]
    assert "failed" in capsys.readouterr().out


def test_a_none_loss_is_a_failed_trial_charged_its_cost(toy_dir, capsys):
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:no_loss", "--backend", "local",
                 "--trials", "2", "--path", "runs/none"]) == 0
    obs = _observations(toy_dir / "runs" / "none")
    assert [(o["failed"], o["cost"]) for o in obs] == [(True, 2.0), (True, 2.0)]


def _tuned(toy_dir, capsys, trials: int = 4) -> Path:
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:train", "--backend", "local",
                 "--concurrency", "1", "--trials", str(trials), "--path", "runs/j"]) == 0
    capsys.readouterr()
    return toy_dir / "runs" / "j"


def test_a_corrupt_journal_line_is_one_error_naming_it_and_repair_keeps_the_rest(toy_dir, capsys):
    folder = _tuned(toy_dir, capsys)
    journal = folder / "journal" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    tells = [i for i, line in enumerate(lines) if '"event":"tell"' in line.replace(" ", "")]
    bad = tells[1]  # the second tell: one finished trial before it, two after
    lines[bad] = lines[bad][: len(lines[bad]) // 2] + "\n"
    journal.write_text("".join(lines))
    for command in (["status", str(folder), "--no-proposal"], ["export", str(folder)]):
        assert main(command) == 2
        err = _one_line_error(capsys)
        assert f"line {bad + 1}" in err and f"carbs-like repair {folder}" in err
    assert main(["repair", str(folder)]) == 0
    out = capsys.readouterr().out
    backups = list(journal.parent.glob("journal.jsonl.*.bak"))
    assert len(backups) == 1 and backups[0].read_text() == "".join(lines)  # nothing lost
    assert "dropped" in out and str(backups[0]) in out
    assert main(["status", str(folder), "--no-proposal"]) == 0
    assert "1 trials (1 ok, 0 failed)" in capsys.readouterr().out
    # The search goes on from the kept prefix.
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:train", "--backend", "local",
                 "--trials", "3", "--path", str(folder)]) == 0
    assert Tuner.read(folder / "journal").n_observations == 3


def test_the_journal_is_the_truth_and_tuner_json_a_cache(toy_dir, capsys):
    folder = _tuned(toy_dir, capsys)
    (folder / "tuner.json").write_text('{"format": "carbs_like.tun')  # corrupt cache
    assert main(["status", str(folder), "--no-proposal"]) == 0
    assert "4 trials (4 ok, 0 failed)" in capsys.readouterr().out
    (folder / "tuner.json").unlink()  # no cache at all
    assert main(["status", str(folder), "--no-proposal"]) == 0
    assert "4 trials (4 ok, 0 failed)" in capsys.readouterr().out
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:train", "--backend", "local",
                 "--trials", "5", "--path", str(folder)]) == 0
    assert "resuming at trial 4" in capsys.readouterr().out
    assert len(_observations(folder)) == 5  # the cache is written again


def test_tuner_resume_opens_a_command_line_folder_without_a_stray_journal(toy_dir, capsys):
    folder = _tuned(toy_dir, capsys)
    tuner = Tuner.resume(folder)
    try:
        assert tuner.n_observations == 4
        tuner.tell(tuner.ask(), loss=2.0, cost=1.0)
    finally:
        tuner.close()
    assert not (folder / "journal.jsonl").exists()
    assert Tuner.read(folder).n_observations == 5
    assert main(["status", str(folder), "--no-proposal"]) == 0
    assert "5 trials (5 ok" in capsys.readouterr().out


def test_status_prints_the_proposal_or_why_there_is_none(experiment_dir, toy_dir, capsys):
    assert main(["status", str(experiment_dir), "--bootstrap", "2"]) == 0
    out = capsys.readouterr().out
    assert "compute spent" in out and "(no budget set)" in out
    proposal = out.split("proposal for 10x the largest run")[1]
    assert re.search(r"lr x[0-9.]+", proposal.splitlines()[0])  # the width of the lr interval
    assert re.search(r"\blr\s+[0-9.e-]+\s+[0-9.e-]+ \.\. [0-9.e-]+", proposal)
    assert "predicted loss" in proposal
    folder = _tuned(toy_dir, capsys, trials=3)  # too few runs for a law
    assert main(["status", str(folder), "--bootstrap", "2"]) == 0
    assert re.search(r"proposal for 10x the largest run \(n_params=.*\): not determined yet: ",
                     capsys.readouterr().out)


def test_resume_refuses_another_space(toy_dir, capsys, tmp_path):
    assert main(["tune", str(TINY_LM), "--trainable", "toy_trainable:train", "--backend", "local",
                 "--trials", "1", "--path", "runs/x"]) == 0
    other = tmp_path / "other.toml"
    other.write_text(TINY_LM.read_text().replace("max = 2e5", "max = 3e5"))
    assert main(["tune", str(other), "--trainable", "toy_trainable:train", "--backend", "local",
                 "--trials", "2", "--path", "runs/x"]) == 2
    assert "another search space" in _one_line_error(capsys)


def test_tune_through_ray_resumes_on_the_same_path(toy_dir, capsys):
    pytest.importorskip("ray")
    args = ["tune", str(TINY_LM), "--trainable", "toy_trainable:train", "--backend", "ray", "--path", "runs/ray"]
    assert main([*args, "--trials", "2"]) == 0
    first = _observations(toy_dir / "runs" / "ray")
    assert len(first) == 2
    assert main([*args, "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "resuming at trial 2" in out and "front" in out
    final = _observations(toy_dir / "runs" / "ray")
    assert len(final) == 3 and final[:2] == first


def test_report_when_the_only_non_scaling_params_are_choices(tmp_path):
    """No numeric relation to draw: the report has no relations figure, and says the choice."""
    from carbs_like import ChoiceParam, LogParam
    from carbs_like.report import write_report

    space = SearchSpace([LogParam("n_params", min=1e4, max=1e6), LogParam("tokens", min=1e5, max=1e7),
                         ChoiceParam("schedule", ["cosine", "wsd"])], scaling=["n_params", "tokens"])
    tuner = Tuner(space, seed=0)
    for i in range(24):
        n, d = 1e4 * 100 ** ((i % 6) / 5), 1e5 * 100 ** ((i * 7 % 5) / 4)
        schedule = ["cosine", "wsd"][i % 2]
        loss = (1.5 + 40 / n**0.3 + 60 / d**0.3) * (0.99 if schedule == "wsd" else 1.0)
        tuner.add({"n_params": n, "tokens": d, "schedule": schedule}, loss=loss, cost=6 * n * d)
    html = write_report(tuner, tmp_path / "report", n_bootstrap=2)
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == ["front.png", "history.png"]
    assert "wsd" in html.read_text()


def test_a_generator_trainable_is_stopped_early_when_hopeless_and_recorded_truncated():
    from carbs_like.cli.run import run_trainable
    from carbs_like.testing import LLMLandscape

    space = LLMLandscape().space()
    config = space.to_configs(space.sobol(1, seed=0))[0]
    spec = "carbs_like.testing.trainables:landscape_curve"
    full = run_trainable(spec, {**config, "steps": 8}, metric="loss", cost="cost")
    assert "truncated" not in full and full["progress"] == 1.0
    # A front already far better at every cost: the run stops as soon as its curve has a slope.
    stopped = run_trainable(spec, {**config, "steps": 8}, metric="loss", cost="cost",
                            front=[(1.0, full["loss"] * 0.5)])
    assert stopped["truncated"] is True and stopped["progress"] < 1.0
    # A front it can still beat: it runs to its end.
    kept = run_trainable(spec, {**config, "steps": 8}, metric="loss", cost="cost",
                         front=[(1.0, full["loss"] * 1.5)])
    assert "truncated" not in kept and kept["progress"] == 1.0


def test_held_out_space_divides_only_the_scaling_axes_tops():
    from carbs_like.cli.verify import held_out_space

    space = SearchSpace.from_dict({"params": {
        "n_params": {"kind": "log", "min": 1e4, "max": 3e5}, "tokens": {"kind": "log", "min": 1e5, "max": 3e6},
        "lr": {"kind": "log", "min": 1e-4, "max": 1e-1}}, "scaling": ["n_params", "tokens"]})
    held = {p["name"]: p for p in held_out_space(space, factor=3.0).to_dict()["params"]}
    assert held["n_params"]["max"] == pytest.approx(1e5) and held["tokens"]["max"] == pytest.approx(1e6)
    assert held["lr"]["max"] == pytest.approx(1e-1) and held["n_params"]["min"] == 1e4


def test_verdict_names_the_winner_the_band_and_the_noise_floor():
    from carbs_like.cli.verify import verdict

    runs = [{"label": "proposal", "loss": 2.00}, {"label": "proposal seed 1", "loss": 2.01},
            {"label": "lr x0.5", "loss": 1.98}, {"label": "lr x2", "loss": 2.10}]
    text = verdict({"runs": runs, "predicted_loss": 2.05, "predicted_band": [1.9, 2.2]})
    assert "lr x0.5 beat the proposal by 1.01%" in text
    assert "inside the band" in text and "moved 0.50% between 2 seeds" in text


def test_report_shows_predicted_vs_measured_at_the_target(experiment_dir):
    from carbs_like.cli.experiment import open_tuner
    from carbs_like.report import write_report

    tuner = open_tuner(experiment_dir, Experiment.load(experiment_dir))
    verify = {"target": {"n_params": 4e5, "tokens": 2e6}, "params": ["lr"], "predicted_loss": 2.0,
              "predicted_band": [1.9, 2.1], "verdict": "verify: the proposal was best",
              "runs": [{"label": "proposal", "config": {"lr": 1e-3}, "loss": 1.95, "cost": 1.0},
                       {"label": "lr x2", "config": {"lr": 2e-3}, "loss": None, "cost": 1.0}]}
    html = write_report(tuner, experiment_dir / "r", n_bootstrap=2, verify=verify, loss_label="loss (nats/byte)")
    assert (experiment_dir / "r" / "verify.png").exists() and (experiment_dir / "r" / "verify.svg").exists()
    assert "Predicted vs measured at the target" in html.read_text()
