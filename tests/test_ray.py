"""carbs_like.ray against a real local Ray Tune (no mocks).

The Tune runs use the synthetic LLM landscape (``carbs_like.testing.trainables``); the other tests
drive the Searcher API directly, as Tune's driver loop does.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from carbs_like import Tuner  # noqa: E402
from carbs_like.ray.trials import LiveTrial  # noqa: E402
from carbs_like.stopping import hopeless  # noqa: E402
from carbs_like.testing.trainables import landscape_trainable  # noqa: E402
from carbs_like.testing import LLMLandscape  # noqa: E402
from carbs_like.ray import CarbsScheduler, CarbsSearcher  # noqa: E402
from carbs_like.tuner import TunerSettings  # noqa: E402

LANDSCAPE = LLMLandscape()
# Small models and no re-runs: fast, and every config is run once unless Tune restarts it.
SETTINGS = TunerSettings(n_init=6, n_candidates=100, fit_maxiter=10, rerun_probability=0.0)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; its workers import this worktree's carbs_like."""
    root = str(Path(__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *([old] if old else [])])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def fit(searcher, path, *, name="exp", scheduler=None, steps=3, callbacks=(), max_concurrent_trials=None,
        **constants):
    return tune.Tuner(
        landscape_trainable,
        param_space={"steps": steps, **constants},
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True,
            max_concurrent_trials=max_concurrent_trials,
        ),
        run_config=tune.RunConfig(storage_path=str(path), name=name, verbose=0, callbacks=list(callbacks)),
    ).fit()


class MostRunning(tune.Callback):
    """Counts the most trials running at once."""

    def __init__(self):
        self.running, self.most = set(), 0

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.most = max(self.most, len(self.running))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)

    on_trial_error = on_trial_complete


class CrashDriver(tune.Callback):
    """Raises in the driver loop once ``after`` trials have finished, if ``marker`` exists (once)."""

    def __init__(self, marker: str, after: int):
        self.marker, self.after = marker, after

    def on_step_begin(self, iteration, trials, **info):
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        if done >= self.after and os.path.exists(self.marker):
            os.remove(self.marker)
            raise RuntimeError("simulated driver crash")


def observation_rows(searcher: CarbsSearcher) -> dict[int, dict]:
    return {o.trial_id: o.to_dict() for o in searcher.tuner._observations}


# ---------------------------------------------------------------------- real Tune runs --------
def test_search_of_20_trials_with_2_concurrent(local_ray, tmp_path):
    marker = tmp_path / "fail"
    marker.touch()
    searcher = CarbsSearcher(LANDSCAPE.space(), max_trials=20, settings=SETTINGS)
    most = MostRunning()
    # Tune's max_concurrent_trials wraps the searcher in a ConcurrencyLimiter, which hands the
    # limit to the searcher (set_max_concurrency) and then only passes calls through.
    results = fit(searcher, tmp_path, callbacks=[most], max_concurrent_trials=2, fail_marker=str(marker))

    obs = searcher.tuner.observations()
    assert len(results) == 20 and len(obs) == 20
    assert most.most <= 2
    assert obs["trial_id"].is_unique
    assert searcher.tuner.pending == []
    sources = {t.metadata["source"] for t in searcher.tuner._trials.values()}
    assert "acquisition" in sources  # the model took over after the space-filling trials

    ids, rows = searcher.trial_ids, observation_rows(searcher)
    assert len(set(ids.values())) == 20
    for result in results:
        row = rows[ids[result.metrics["trial_id"]]]
        assert row["metadata"]["ray_trial_id"] == result.metrics["trial_id"]
        assert row["cost"] == pytest.approx(result.metrics["cost"])
        if result.error is None:
            assert row["loss"] == pytest.approx(result.metrics["loss"]) and not row["failed"]
        else:  # crashed (fail_marker) or diverged: a failure with the cost it burned
            assert row["failed"] and row["metadata"]["reason"] == "error"
    crashed = [r for r in results if r.error is not None and "simulated crash" in str(r.error)]
    assert len(crashed) == 1
    assert rows[ids[crashed[0].metrics["trial_id"]]]["failed"]


def test_interrupted_experiment_is_restored_without_losing_or_repeating_trials(
    local_ray, tmp_path, monkeypatch
):
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # checkpoint every step, as Ray's own tests do
    crash, fail = tmp_path / "crash", tmp_path / "fail"
    crash.touch()
    fail.touch()
    searcher = CarbsSearcher(LANDSCAPE.space(), max_trials=10, max_concurrent=2, settings=SETTINGS)
    with pytest.raises(Exception, match="Tune run failed|simulated driver crash"):
        fit(searcher, tmp_path, scheduler=CarbsScheduler(), callbacks=[CrashDriver(str(crash), after=5)],
            fail_marker=str(fail))
    experiment = tmp_path / "exp"
    before = CarbsSearcher.from_experiment(experiment)
    finished_before = observation_rows(before)
    assert 0 < len(finished_before) < 10

    results = tune.Tuner.restore(str(experiment), trainable=landscape_trainable, restart_errored=True).fit()
    after = CarbsSearcher.from_experiment(experiment)
    rows, ids = observation_rows(after), after.trial_ids
    tuner = after.tuner

    # No finished trial lost: the same observations, unchanged.
    for tid, row in finished_before.items():
        assert rows[tid] == row
    # Every Ray trial accounted for exactly once.
    assert tuner.observations()["trial_id"].is_unique
    assert tuner.pending == []
    grid_ids = [r.metrics["trial_id"] for r in results]
    assert all(ids[rid] is not None for rid in grid_ids)
    assert len({ids[rid] for rid in grid_ids}) == len(grid_ids)
    for r in results:
        assert rows[ids[r.metrics["trial_id"]]]["metadata"]["ray_trial_id"] == r.metrics["trial_id"]
    # Trials that errored before the interruption (the crash, any diverged run) are failures; Tune
    # re-ran them under new ids, which the searcher accepted from their results. They are the only
    # observations not in the final grid.
    errored_before = sorted(tid for tid, row in finished_before.items() if row["failed"])
    extra = sorted(tid for tid, row in rows.items() if row["metadata"]["ray_trial_id"] not in grid_ids)
    assert errored_before and extra == errored_before
    reruns = [r for r in results if r.metrics["trial_id"] not in before.trial_ids]
    for tid in extra:
        assert any(r.config["lr"] == rows[tid]["config"]["lr"] for r in reruns)
    assert len(rows) == len(results) + len(extra)
    # The search continued instead of starting afresh: 10 suggestions in all, and no config run
    # twice except the errored ones Tune restarted.
    configs = {tuple(sorted(row["config"].items())) for row in rows.values()}
    assert len(configs) == len(rows) - len(extra)
    suggested = [t for t in tuner._trials.values() if t.metadata.get("source") != "add" and t.id in rows]
    assert len(suggested) == 10


def test_scheduler_stops_only_trials_that_cannot_reach_the_front(local_ray, tmp_path):
    space = LANDSCAPE.space()
    tuner = Tuner(space, seed=1, settings=SETTINGS)
    # Warm start with one cheap, well-tuned run: it is the front most trials are measured against.
    best = space.validate({k: (round(v) if k == "batch_size" else v)
                           for k, v in LANDSCAPE.optimal_config(3e6, 3e8).items()})
    tuner.add(best, loss=LANDSCAPE.loss(best), cost=LANDSCAPE.cost(best))
    searcher = CarbsSearcher(tuner, max_trials=10, max_concurrent=2)
    fit(searcher, tmp_path, scheduler=CarbsScheduler(grace=0.3), steps=6)

    rows = list(observation_rows(searcher).values())
    truncated = [r for r in rows if r["metadata"].get("truncated")]
    assert truncated, "expected the scheduler to stop some trials worse than the warm-start front"
    front = [(r["cost"], r["loss"]) for r in rows if not r["failed"] and not r["metadata"].get("truncated")]
    for r in truncated:
        full_cost = LANDSCAPE.cost(r["config"])
        assert r["cost"] < full_cost  # it spent only part of its run
        # Had it run to the end, it would still not be on the front.
        final = LANDSCAPE.loss(r["config"])
        assert final is None or final >= min(loss for cost, loss in front if cost <= full_cost) * 0.99


# ---------------------------------------------------------------------- the Searcher API ------
def drive(searcher: CarbsSearcher, n: int, *, seed: int = 0, prefix: str = "t") -> list[str]:
    """Run ``n`` trials through the Searcher API like Tune's driver loop does."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        rid = f"{prefix}{i}"
        config = searcher.suggest(rid)
        assert isinstance(config, dict)
        loss, cost, failed = LANDSCAPE.evaluate(config, rng=rng)
        result = {"loss": loss if loss is not None else 9.0, "cost": cost, "time_total_s": 1.0,
                  **{f"config/{k}": v for k, v in config.items()}}
        searcher.on_trial_result(rid, result)
        searcher.on_trial_complete(rid, result=None if failed else result, error=failed)
        ids.append(rid)
    return ids


def test_save_to_dir_and_restore_from_dir_round_trip(tmp_path):
    space = LANDSCAPE.space()
    first = CarbsSearcher(space, settings=SETTINGS, background=False, max_trials=40)
    drive(first, 7)  # past the 6 space-filling trials: the next asks use the model
    live = first.suggest("running")
    first.on_trial_result("running", {"loss": 7.0, "cost": 1e14})
    first.save_to_dir(str(tmp_path))

    saved = next(tmp_path.glob("searcher-state-*.pkl"))
    assert json.loads(saved.read_text())["format"] == "carbs_like.ray.searcher"  # JSON, not a pickle
    second = CarbsSearcher(space, seed=123, background=False)
    second.restore_from_dir(str(tmp_path))
    third = pickle.loads(pickle.dumps(first))  # what Tune does to put the searcher in its experiment

    for other in (second, third):
        assert other.tuner.observations().equals(first.tuner.observations())
        assert other.trial_ids == first.trial_ids
        assert [t.id for t in other.tuner.pending] == [t.id for t in first.tuner.pending]
    # The running trial finishes after the restore and is told once.
    for s in (first, second, third):
        s.on_trial_complete("running", result={"loss": 6.5, "cost": 2e14})
    nxt = [s.suggest("next") for s in (first, second, third)]
    assert nxt[0] == nxt[1] == nxt[2]
    assert first.tuner.observations().equals(second.tuner.observations())
    assert live not in (None, Searcher.FINISHED)


def test_a_journal_ahead_of_the_checkpoint_is_the_truth_on_restore(tmp_path):
    journal, ckpt = tmp_path / "tuner", tmp_path / "ckpt"
    first = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False, path=journal)
    drive(first, 3)
    first.suggest("a")
    first.on_trial_result("a", {"loss": 7.0, "cost": 1e14})
    first.save_to_dir(str(ckpt))  # Tune's last experiment checkpoint
    first.on_trial_complete("a", result={"loss": 6.5, "cost": 2e14})  # told after it, journaled
    first.suggest("b")  # handed out after it: Tune's checkpoint does not know "b"
    spent = first.spent
    first.close()  # the driver dies

    second = CarbsSearcher(LANDSCAPE.space(), background=False)
    second.restore_from_dir(str(ckpt))  # what tune.Tuner.restore does
    assert second.tuner.observations().equals(Tuner.read(journal).observations())
    assert second.trial_ids["a"] == first.trial_ids["a"] and not second.is_running("a")
    second.on_trial_complete("a", result={"loss": 6.5, "cost": 2e14})  # Tune re-ran it: not told again
    assert len(second.tuner.observations()) == 4 and second.spent == pytest.approx(spent)
    b = first.tuner.pending[0]
    assert second.suggest("c") == dict(b.config)  # the trial asked after the checkpoint is handed out
    second.on_trial_complete("c", result={"loss": 5.0, "cost": 1e14})
    second.close()
    resumed = Tuner.resume(journal)  # the journal goes on where the search is
    assert [o.metadata["ray_trial_id"] for o in resumed.observed][-2:] == ["a", "c"]
    resumed.close()
    with pytest.raises(ValueError, match="path= with a SearchSpace"):
        CarbsSearcher(resumed, path=journal)


def test_a_trial_the_searcher_never_suggested_is_accepted_from_its_results():
    searcher = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False)
    drive(searcher, 2)
    config = LANDSCAPE.space().to_configs(LANDSCAPE.space().sobol(1, seed=5))[0]
    result = {"loss": 4.2, "cost": 3e15, "config": dict(config)}
    searcher.on_trial_result("restarted", result)
    searcher.on_trial_complete("restarted", result=result)
    row = observation_rows(searcher)[searcher.trial_ids["restarted"]]
    assert row["config"] == searcher.tuner.space.validate(config)
    assert (row["loss"], row["cost"], row["metadata"]["ray_trial_id"]) == (4.2, 3e15, "restarted")
    # Results that carry no config cannot be accounted for: a warning, nothing recorded.
    with pytest.warns(RuntimeWarning, match="no config"):
        searcher.on_trial_complete("stranger", result={"loss": 1.0})
    assert "stranger" not in searcher.trial_ids and len(searcher.tuner.observations()) == 3


def test_an_error_is_a_failure_charged_the_cost_it_burned():
    searcher = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False, resources={"GPU": 2})
    searcher.suggest("reports_cost")
    searcher.on_trial_result("reports_cost", {"loss": 5.0, "cost": 7e14, "time_total_s": 3.0})
    searcher.on_trial_complete("reports_cost", result=None, error=True)  # what Ray passes on error
    searcher.suggest("reports_time")
    searcher.on_trial_result("reports_time", {"loss": 5.0, "time_total_s": 3.0})
    searcher.on_trial_complete("reports_time", result=None, error=True)
    rows = observation_rows(searcher)
    by_ray = {r["metadata"]["ray_trial_id"]: r for r in rows.values()}
    assert by_ray["reports_cost"]["failed"] and by_ray["reports_cost"]["cost"] == 7e14
    assert by_ray["reports_time"]["failed"] and by_ray["reports_time"]["cost"] == 3.0 * 2  # GPU-seconds
    assert by_ray["reports_time"]["metadata"]["cost_source"] == "time_total_s"


def test_a_diverging_trial_survives_a_checkpoint_and_is_a_failure(tmp_path):
    searcher = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False)
    searcher.suggest("nan")
    searcher.on_trial_result("nan", {"loss": float("nan"), "cost": 5e14})
    searcher.save_to_dir(str(tmp_path))  # Tune checkpoints while the trial runs: valid JSON
    restored = CarbsSearcher(LANDSCAPE.space(), background=False)
    restored.restore_from_dir(str(tmp_path))
    restored.on_trial_complete("nan", result={"loss": float("nan"), "cost": 6e14})
    (row,) = observation_rows(restored).values()
    assert row["failed"] and row["cost"] == 6e14 and row["metadata"]["reason"] == "non-finite loss"


def test_budgets_end_the_search():
    by_trials = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False, max_trials=3)
    drive(by_trials, 3)
    assert by_trials.suggest("one_more") == Searcher.FINISHED
    assert by_trials.tuner.pending == [] and len(by_trials.tuner.observations()) == 3

    budget = 5e16
    by_cost = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False, max_cost=budget)
    n = 0
    while by_cost.suggest(f"probe{n}") != Searcher.FINISHED:
        by_cost.on_trial_complete(f"probe{n}")  # never ran: forgotten, spends nothing
        assert by_cost.spent < budget
        drive(by_cost, 1, seed=n, prefix=f"c{n}_")
        n += 1
    assert by_cost.spent >= budget
    assert by_cost.spent - by_cost.tuner.observations()["cost"].iloc[-1] < budget


def test_concurrency_is_enforced_by_the_searcher():
    searcher = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, background=False)
    assert searcher.set_max_concurrency(2) is True
    assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
    assert searcher.suggest("c") is None
    assert searcher.concurrency["running"] == 2 and searcher.concurrency["limit"] == 2
    searcher.on_trial_complete("a", result={"loss": 5.0, "cost": 1e15})
    assert isinstance(searcher.suggest("c"), dict)


def test_n_ready_trials_are_kept_ready_for_free_slots_and_are_distinct():
    """The ask-ahead engine keeps ``n_ready`` trials ready (``searcher.concurrency`` shows it),
    each asked with the others pending, so no two are the same."""
    searcher = CarbsSearcher(LANDSCAPE.space(), settings=SETTINGS, max_concurrent=6, n_ready=6)
    deadline = time.monotonic() + 60
    for i in range(7):  # past the space-filling start: the models ask from here on
        while (config := searcher.suggest(f"t{i}")) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        searcher.on_trial_complete(f"t{i}", result={"loss": 5.0 + 0.1 * i, "cost": 1e15 * (i + 1)})
    while searcher.concurrency["ready"] < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert searcher.concurrency["ready"] == 6 and len(searcher.tuner.observations()) == 7
    configs = [searcher.suggest(f"slot{i}") for i in range(6)]
    assert all(isinstance(c, dict) for c in configs)
    assert len({tuple(sorted(c.items())) for c in configs}) == 6


def test_bad_input_is_refused_with_a_fix():
    space = LANDSCAPE.space()
    with pytest.raises(ValueError, match="mode"):
        CarbsSearcher(space, mode="best")
    with pytest.raises(ValueError, match="max_cost"):
        CarbsSearcher(space, max_cost=-1.0)
    with pytest.raises(TypeError, match="SearchSpace or a Tuner"):
        CarbsSearcher({"lr": (1e-4, 1e-2)})
    searcher = CarbsSearcher(space)
    with pytest.raises(ValueError, match="searches its SearchSpace"):
        searcher.set_search_properties("loss", "min", {"lr": tune.loguniform(1e-4, 1e-2)})
    with pytest.raises(ValueError, match="remove it from"):
        searcher.set_search_properties("loss", "min", {"lr": 1e-3})
    assert searcher.set_search_properties("loss", "min", {"steps": 100}) is True


def test_mode_max_minimises_the_negated_metric():
    searcher = CarbsSearcher(
        LANDSCAPE.space(), metric="accuracy", mode="max", settings=SETTINGS, background=False
    )
    searcher.suggest("a")
    searcher.on_trial_complete("a", result={"accuracy": 0.8, "cost": 1.0})
    assert searcher.tuner.observations()["loss"].iloc[0] == -0.8


# ---------------------------------------------------------------------- the stopping rule -----
@pytest.mark.parametrize("seed", range(20))
def test_hopeless_never_stops_a_power_law_curve_that_reaches_the_front(seed):
    rng = np.random.default_rng(seed)
    E, A, a = rng.uniform(1, 3), rng.uniform(1, 10), rng.uniform(0.1, 1.0)
    final_cost = 10 ** rng.uniform(2, 6)
    costs = final_cost * np.linspace(0.1, 1.0, 10)
    curve = [(c, E + A * c**-a) for c in costs]
    final_loss = curve[-1][1]
    reachable = [(final_cost, final_loss + 1e-9)]
    for k in range(2, len(curve)):
        assert not hopeless(curve[:k], final_cost=final_cost, front=reachable)
    # A front better than the curve's own end is out of reach once its rate has been seen.
    assert hopeless(curve[:-1], final_cost=final_cost, front=[(final_cost * 0.5, final_loss * 0.5)])
    assert not hopeless(curve[:3], final_cost=final_cost, front=[(final_cost * 2, 0.0)])  # nothing cheaper


def test_spent_falls_back_to_gpu_seconds_then_wall_clock():
    live = LiveTrial(tuner_id=0, config={}, started=0.0, resources={"CPU": 4, "GPU": 0.5})
    live.update({"time_total_s": 10.0}, metric="loss", cost="cost")
    assert live.spent(None) == (5.0, "time_total_s")
    live.update({"cost": 42.0}, metric="loss", cost="cost")
    assert live.spent(None) == (42.0, "reported")
    cpu_only = LiveTrial(tuner_id=1, config={}, resources={"CPU": 4})
    cpu_only.update({"time_total_s": 2.0}, metric="loss", cost="cost")
    assert cpu_only.spent(None) == (8.0, "time_total_s")
    unstarted = LiveTrial(tuner_id=2, config={})
    cost, source = unstarted.spent({"GPU": 1})
    assert source == "wall_clock" and cost > 0 and math.isfinite(cost)


def test_refitting_outside_ask_gives_the_same_next_trial():
    """Tuner.refit_surrogate + use_surrogate + ask(refit=False), the searcher's background path,
    suggests what a plain ask() (which refits inside) would."""
    tuner = Tuner(LANDSCAPE.space(), seed=3, settings=SETTINGS)
    rng = np.random.default_rng(0)
    for _ in range(8):
        trial = tuner.ask()
        loss, cost, failed = LANDSCAPE.evaluate(trial.config, rng=rng)
        tuner.tell(trial, loss=loss, cost=cost, failed=failed)
    twin = Tuner.from_state_dict(tuner.state_dict())
    data = tuner.observed_data()
    tuner.use_surrogate(tuner.refit_surrogate(data), data)
    ours, theirs = tuner.ask(refit=False).config, twin.ask().config
    # The same point, up to the last bits of the gradient steps' floating-point arithmetic.
    assert ours == {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in theirs.items()}


def test_public_api_of_carbs_like_ray():
    import carbs_like.ray as module

    assert sorted(module.__all__) == ["CarbsScheduler", "CarbsSearcher"]
    assert issubclass(module.CarbsSearcher, Searcher)
    assert issubclass(module.CarbsScheduler, tune.schedulers.TrialScheduler)


def test_ray_tunes_mlflow_callback_logs_every_trial_of_the_search(local_ray, tmp_path, monkeypatch):
    """The README's MLflow snippet, with MLflow's local file store: one MLflow run per trial, with
    the config the searcher chose as params and the loss it was told as a metric."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to use a folder
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = (tmp_path / "mlruns").as_uri()
    searcher = CarbsSearcher(LANDSCAPE.space(), max_trials=6, settings=SETTINGS)
    fit(searcher, tmp_path, max_concurrent_trials=2,
        callbacks=[MLflowLoggerCallback(tracking_uri=uri, experiment_name="sweep")])

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    obs = searcher.tuner.observations()
    assert len(runs) == len(obs) == 6
    told = {round(float(v), 9) for v in obs["lr"]}
    logged = {round(float(r.data.params["lr"]), 9) for r in runs}
    assert logged == told
    logged_loss = {round(r.data.metrics["loss"], 9) for r in runs if "loss" in r.data.metrics}
    ok = obs.loc[obs["status"] == "ok", "loss"]
    assert len(ok) and {round(float(v), 9) for v in ok} <= logged_loss
