"""The journal: resume rebuilds the exact state, survives torn writes, refuses corrupt files and
concurrent writers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from carbs_like import LogParam, SearchSpace, Tuner, TunerSettings
from carbs_like import journal as journal_module
from carbs_like.journal import JOURNAL_FILE, LOCK_FILE, JournalError, JournalLockedError

# Small and quick: the GPs take over after 4 trials, with little fitting per ask.
SETTINGS = TunerSettings(n_init=4, n_candidates=40, fit_maxiter=8, max_fit_points=16, rerun_probability=0.2)


def make_space() -> SearchSpace:
    return SearchSpace(
        [LogParam("n_params", min=1e6, max=1e8), LogParam("lr", center=1e-3)],
        scaling=["n_params"],
    )


def objective(config: dict) -> tuple[float, float]:
    n, lr = config["n_params"], config["lr"]
    loss = 2.0 + 30.0 / n**0.3 + 0.1 * math.log(lr / (3e-3 * (n / 1e6) ** -0.5)) ** 2
    return loss, 6.0 * n * 1e9


def drive(tuners: list[Tuner], steps: int) -> None:
    """The same sequence of events on every tuner: asks, tells, a failure, a forget, an add,
    and one trial always left pending (so parallel asks are exercised)."""
    for step in range(steps):
        trials = [t.ask() for t in tuners]
        assert all(t.to_dict() == trials[0].to_dict() for t in trials), f"tuners diverged at step {step}"
        if step % 4 == 3:
            continue  # stays pending
        loss, cost = objective(trials[0].config)
        for tuner, trial in zip(tuners, trials):
            if step == 2:
                tuner.forget(trial)
            elif step == 5:
                tuner.tell(trial, loss=None, cost=cost, failed=True)
            else:
                tuner.tell(trial, loss=loss, cost=cost, metadata={"step": step})
        if step == 1:
            for tuner in tuners:
                tuner.add({"n_params": 3e6, "lr": 2e-3}, loss=objective({"n_params": 3e6, "lr": 2e-3})[0], cost=1.8e16)


def assert_same_state(a: Tuner, b: Tuner) -> None:
    assert a.observations().equals(b.observations())
    assert [t.to_dict() for t in a.pending] == [t.to_dict() for t in b.pending]
    assert a._dynamic_state() == b._dynamic_state()


@pytest.mark.parametrize(
    ("steps", "settings"),
    [
        (9, SETTINGS),  # the last event is a tell: the next ask fits anew
        # The last event is an ask left pending: the uninterrupted tuner reuses its cached models
        # for the next ask, the resumed one rebuilds them from the journaled hyperparameters; and
        # hyperparameters are only refitted when the data grew by half (conditioned in between).
        (8, TunerSettings(**{**SETTINGS.__dict__, "refit_always_below": 0, "refit_growth": 1.5})),
    ],
)
def test_resume_rebuilds_the_exact_state_and_the_same_next_ask(tmp_path, steps, settings):
    folder = tmp_path / "sweep"
    journaled = Tuner(make_space(), seed=3, settings=settings, path=folder)
    reference = Tuner(make_space(), seed=3, settings=settings)
    drive([journaled, reference], steps=steps)
    journaled.close()

    resumed = Tuner.resume(folder)
    assert_same_state(resumed, reference)
    assert len(resumed.pending) >= 2
    # The search goes on exactly as if it had never stopped, and keeps journaling.
    drive([resumed, reference], steps=3)
    resumed.close()
    assert_same_state(Tuner.resume(folder), reference)


def test_pending_trials_after_resume_can_be_told_or_forgotten(tmp_path):
    folder = tmp_path / "sweep"
    with Tuner(make_space(), seed=0, settings=SETTINGS, path=folder) as tuner:
        first, second = tuner.ask(), tuner.ask()
    with Tuner.resume(folder) as resumed:
        assert [t.id for t in resumed.pending] == [first.id, second.id]
        resumed.tell(first.id, loss=3.0, cost=1.0)
        resumed.forget(second.id)
        assert resumed.pending == []
    with Tuner.resume(folder) as again:
        assert again.pending == [] and list(again.observations()["trial_id"]) == [first.id]
        with pytest.raises(KeyError, match="not pending"):
            again.tell(second.id, loss=1.0, cost=1.0)


def journal_with_events(folder: Path) -> Path:
    with Tuner(make_space(), seed=0, settings=SETTINGS, path=folder) as tuner:
        for _ in range(3):
            trial = tuner.ask()
            tuner.tell(trial, loss=objective(trial.config)[0], cost=1.0)
        tuner.ask()
    return folder / JOURNAL_FILE


def test_torn_last_line_is_ignored_with_a_warning_and_cut_off(tmp_path):
    file = journal_with_events(tmp_path)
    good = file.read_bytes()
    with Tuner.resume(tmp_path) as tuner:
        expected = tuner.observations()
    with file.open("ab") as f:
        f.write(b'{"event":"tell","observation":{"trial_id":3,"config":{"n_par')  # died mid-write
    with pytest.warns(RuntimeWarning, match="line 9 is torn"):
        tuner = Tuner.resume(tmp_path)
    assert tuner.observations().equals(expected)
    assert file.read_bytes() == good  # cut back, so later events append to a valid file
    tuner.tell(tuner.pending[0], loss=2.5, cost=1.0)
    tuner.close()
    with Tuner.resume(tmp_path) as again:  # no warning: the file is valid again
        assert len(again.observations()) == len(expected) + 1


def test_last_event_missing_only_its_newline_is_kept(tmp_path):
    file = journal_with_events(tmp_path)
    file.write_bytes(file.read_bytes()[:-1])
    with Tuner.resume(tmp_path) as tuner:
        assert len(tuner.pending) == 1
    assert file.read_bytes().endswith(b"}\n")


def edit_line(file: Path, lineno: int, edit) -> None:
    lines = file.read_text().splitlines(keepends=True)
    lines[lineno - 1] = edit(lines[lineno - 1])
    file.write_text("".join(lines))


def test_a_corrupt_line_before_the_last_is_an_error_naming_the_line(tmp_path):
    file = journal_with_events(tmp_path)
    edit_line(file, 3, lambda line: line[: len(line) // 2] + "\n")
    with pytest.raises(JournalError, match=r"line 3: not valid JSON"):
        Tuner.resume(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cost", -1.0, "cost must be a positive"),
        ("loss", "low", "loss must be a number"),
        ("trial_id", 99, "trial 99 is not pending"),
        ("config", {"lr": 1e-3}, "missing param"),
    ],
)
def test_an_edited_field_is_an_error_naming_line_and_field(tmp_path, field, value, message):
    file = journal_with_events(tmp_path)

    def edit(line: str) -> str:
        record = json.loads(line)
        record["observation"][field] = value
        return json.dumps(record) + "\n"

    edit_line(file, 3, edit)  # line 3 is the first tell
    with pytest.raises(JournalError, match=rf"line 3 \(tell event\).*{message}"):
        Tuner.resume(tmp_path)


@pytest.mark.parametrize(("version", "message"), [(2, "newer carbs_like; upgrade"), (0, "older"), ("1", "corrupt")])
def test_a_journal_of_another_version_is_refused(tmp_path, version, message):
    file = journal_with_events(tmp_path)
    edit_line(file, 1, lambda line: json.dumps({**json.loads(line), "version": version}) + "\n")
    with pytest.raises(JournalError, match=rf"line 1 \(header\): field 'version'.*{message}"):
        Tuner.resume(tmp_path)


def test_a_new_tuner_refuses_a_folder_that_holds_a_journal(tmp_path):
    journal_with_events(tmp_path)
    before = (tmp_path / JOURNAL_FILE).read_bytes()
    with pytest.raises(FileExistsError, match=r"Tuner\.resume"):
        Tuner(make_space(), seed=0, path=tmp_path)
    assert (tmp_path / JOURNAL_FILE).read_bytes() == before
    Tuner.resume(tmp_path).close()  # and the refusal left the lock free


def test_resume_without_a_journal_says_how_to_start_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Tuner\(space, path="):
        Tuner.resume(tmp_path / "nothing")


def test_two_tuners_cannot_hold_one_journal(tmp_path):
    tuner = Tuner(make_space(), seed=0, path=tmp_path)
    with pytest.raises(JournalLockedError, match=rf"pid {os.getpid()}"):
        Tuner.resume(tmp_path)
    tuner.close()
    with pytest.raises(RuntimeError, match="closed"):
        tuner.ask()
    Tuner.resume(tmp_path).close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from carbs_like import Tuner
    tuner = Tuner.resume(sys.argv[1])
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_a_lock_held_by_another_process_names_it_and_a_dead_holders_lock_is_taken_over(tmp_path):
    journal_with_events(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(JournalLockedError, match=rf"pid {holder.pid} on host"):
            Tuner.resume(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with pytest.warns(RuntimeWarning, match=rf"left behind by pid {holder.pid}.*no longer running"):
        tuner = Tuner.resume(tmp_path)
    assert len(tuner.observations()) == 3
    tuner.close()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # a clean close leaves nothing to take over


def test_a_failed_write_changes_nothing_and_resume_continues_from_the_journal(tmp_path, monkeypatch):
    tuner = Tuner(make_space(), seed=0, settings=SETTINGS, path=tmp_path)
    trial = tuner.ask()
    before = (tmp_path / JOURNAL_FILE).read_bytes()

    def disk_full(fd, data):
        os.write(fd, data[:10])  # a partial line, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_module, "write_all", disk_full)
    with pytest.raises(OSError, match="could not journal the tell event"):
        tuner.tell(trial, loss=2.0, cost=1.0)
    assert tuner.observations().empty and [t.id for t in tuner.pending] == [trial.id]
    assert (tmp_path / JOURNAL_FILE).read_bytes() == before  # the partial line was cut off
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="an earlier write failed"):
        tuner.tell(trial, loss=2.0, cost=1.0)
    tuner.close()
    with Tuner.resume(tmp_path) as resumed:
        resumed.tell(trial.id, loss=2.0, cost=1.0)
        assert list(resumed.observations()["loss"]) == [2.0]


def test_events_are_on_disk_when_the_call_returns(tmp_path):
    tuner = Tuner(make_space(), seed=0, path=tmp_path)
    trial = tuner.ask()
    tuner.tell(trial, loss=2.0, cost=1.0)
    lines = (tmp_path / JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(line).get("event") for line in lines] == [None, "ask", "tell"]
    assert json.loads(lines[1])["state"]["next_id"] == 1
    tuner.close()


def test_a_saved_snapshot_loads_to_the_same_state_and_next_ask(tmp_path):
    tuner = Tuner(make_space(), seed=5, settings=SETTINGS)
    drive([tuner], steps=8)
    path = tuner.save(tmp_path / "tuner.json")
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file
    loaded = Tuner.load(path)
    assert_same_state(loaded, tuner)
    assert loaded.ask().to_dict() == tuner.ask().to_dict()
