"""Tuner: ask/tell/forget/add state transitions, bad input, save/load, the front, search quality."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch

import carbs_like
from carbs_like import ChoiceParam, LogParam, SearchSpace, Tuner, TunerSettings
from carbs_like.testing import LLMLandscape, front_gap


def small_space() -> SearchSpace:
    return SearchSpace(
        [
            LogParam("n_params", min=1e6, max=3e7),
            LogParam("lr", center=1e-3),
            LogParam("batch_size", min=8, max=1024, integer=True, multiple=8),
            ChoiceParam("schedule", ["cosine", "wsd"]),
        ],
        scaling=["n_params"],
    )


def objective(config) -> tuple[float, float]:
    loss = 3.0 + 1e3 / config["n_params"] ** 0.5 + 0.2 * math.log(config["lr"] / 3e-3) ** 2
    loss += 0.05 * math.log(config["batch_size"] / 128) ** 2 + (0.02 if config["schedule"] == "cosine" else 0.0)
    return loss, 6 * config["n_params"] * 1e6


def run(tuner: Tuner, n: int) -> None:
    for _ in range(n):
        trial = tuner.ask()
        loss, cost = objective(trial.config)
        tuner.tell(trial, loss=loss, cost=cost)


@pytest.fixture(scope="module")
def warm_tuner() -> Tuner:
    """A tuner past its Sobol phase (the models choose its asks)."""
    tuner = Tuner(small_space(), seed=0, settings=TunerSettings(n_candidates=300))
    run(tuner, 14)
    return tuner


def test_public_api_is_pinned():
    assert set(carbs_like.__all__) == {
        "ChoiceParam", "JournalError", "JournalLockedError", "LinearParam", "LogParam", "LogitParam",
        "Observation", "Param", "ScalingLaw", "SearchSpace", "Trial", "Tuner", "TunerSettings", "__version__",
    }
    assert issubclass(carbs_like.JournalError, ValueError)
    for name in carbs_like.__all__:
        assert getattr(carbs_like, name) is not None


def test_ask_tell_records_an_observation_row_per_trial():
    tuner = Tuner(small_space(), seed=0)
    trials = [tuner.ask() for _ in range(3)]
    assert [t.id for t in trials] == [0, 1, 2]
    assert len(tuner.pending) == 3
    tuner.tell(trials[1], loss=3.0, cost=10.0)
    tuner.tell(trials[0].id, loss=None, cost=5.0, failed=True)
    tuner.forget(trials[2])
    df = tuner.observations()
    assert list(df.columns) == ["trial_id", "n_params", "lr", "batch_size", "schedule", "loss", "cost", "status"]
    assert df["trial_id"].tolist() == [1, 0]
    assert df["status"].tolist() == ["ok", "failed"]
    assert math.isnan(df["loss"].iloc[1])
    assert tuner.pending == []
    assert isinstance(df, pd.DataFrame)


def test_configs_are_plain_valid_dicts():
    tuner = Tuner(small_space(), seed=1)
    for _ in range(5):
        config = tuner.ask().config
        assert tuner.space.validate(config) == config
        assert isinstance(config["batch_size"], int) and config["batch_size"] % 8 == 0
        assert isinstance(config["lr"], float)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"loss": 1.0, "cost": -1.0}, ValueError, "cost must be a positive finite number"),
        ({"loss": 1.0, "cost": 0.0}, ValueError, "cost must be a positive finite number"),
        ({"loss": 1.0, "cost": float("nan")}, ValueError, "cost must be a positive finite number"),
        ({"loss": 1.0, "cost": float("inf")}, ValueError, "cost must be a positive finite number"),
        ({"loss": 1.0, "cost": "3"}, TypeError, "cost must be a positive number"),
        ({"loss": "low", "cost": 1.0}, TypeError, "loss must be a number"),
        ({"loss": [1.0], "cost": 1.0}, TypeError, "loss must be a number"),
        ({"loss": None, "cost": 1.0}, TypeError, "failed=True"),
        ({"loss": 1.0, "cost": 1.0, "failed": "yes"}, TypeError, "failed must be True or False"),
        ({"loss": 1.0, "cost": 1.0, "metadata": {"f": object()}}, TypeError, "metadata must be JSON"),
    ],
)
def test_bad_tell_raises_and_records_nothing(kwargs, error, match):
    tuner = Tuner(small_space(), seed=0)
    trial = tuner.ask()
    before = tuner.state_dict()
    with pytest.raises(error, match=match):
        tuner.tell(trial, **kwargs)
    assert tuner.state_dict() == before
    tuner.tell(trial, loss=1.0, cost=1.0)  # still pending, still tellable
    assert len(tuner.observations()) == 1


def test_unknown_and_repeated_trial_ids_raise_key_errors():
    tuner = Tuner(small_space(), seed=0)
    trial = tuner.ask()
    with pytest.raises(KeyError, match="unknown trial id 99"):
        tuner.tell(99, loss=1.0, cost=1.0)
    tuner.tell(trial, loss=1.0, cost=1.0)
    with pytest.raises(KeyError, match="already told"):
        tuner.tell(trial, loss=2.0, cost=1.0)
    with pytest.raises(KeyError, match="not pending"):
        tuner.forget(trial)
    with pytest.raises(TypeError, match="Trial or an int"):
        tuner.tell("0", loss=1.0, cost=1.0)
    assert tuner.observations()["loss"].tolist() == [1.0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_is_recorded_as_a_failure_with_a_warning(bad):
    tuner = Tuner(small_space(), seed=0)
    trial = tuner.ask()
    with pytest.warns(RuntimeWarning, match="recorded as a failed run"):
        obs = tuner.tell(trial, loss=bad, cost=2.0)
    assert obs.failed and obs.loss is None
    assert tuner.observations()["status"].tolist() == ["failed"]


def test_add_imports_runs_and_names_bad_params():
    tuner = Tuner(small_space(), seed=0)
    good = {"n_params": 2e6, "lr": 1e-3, "batch_size": 64, "schedule": "wsd"}
    tuner.add(good, loss=3.2, cost=1e12)
    with pytest.raises(ValueError, match="n_params=.* is above its max"):
        tuner.add({**good, "n_params": 1e9}, loss=3.0, cost=1e12)
    with pytest.raises(ValueError, match=r"missing param\(s\) \['lr'\]"):
        tuner.add({k: v for k, v in good.items() if k != "lr"}, loss=3.0, cost=1e12)
    with pytest.raises(ValueError, match="cost must be"):
        tuner.add(good, loss=3.0, cost=-1)
    df = tuner.observations()
    assert len(df) == 1 and df["loss"].iloc[0] == 3.2
    assert tuner.ask().id == 1  # ids keep counting past imported runs


def test_parallel_asks_are_distinct_and_never_repeat_observed_configs(warm_tuner):
    tuner = Tuner.from_state_dict(warm_tuner.state_dict())
    observed = set(tuner.space.keys(tuner.space.to_search(tuner.observations()[tuner.space.names].to_dict("records"))))
    asked = [tuner.ask() for _ in range(6)]
    keys = tuner.space.keys(tuner.space.to_search([t.config for t in asked]))
    assert len(set(keys)) == 6
    assert not (set(keys) & observed) or any(t.metadata.get("source") == "rerun" for t in asked)
    assert all(t.metadata["source"] in ("acquisition", "rerun") for t in asked)


@pytest.mark.parametrize("n_told", [3, 14])
def test_save_load_gives_the_same_next_ask(tmp_path, n_told):
    tuner = Tuner(small_space(), seed=3, settings=TunerSettings(n_candidates=300))
    run(tuner, n_told)
    tuner.ask()  # leave one pending
    path = tuner.save(tmp_path / "tuner.json")
    loaded = Tuner.load(path)
    assert [t.id for t in loaded.pending] == [t.id for t in tuner.pending]
    pd.testing.assert_frame_equal(loaded.observations(), tuner.observations())
    a, b = tuner.ask(), loaded.ask()
    assert a.id == b.id and a.config == b.config
    assert json.loads(path.read_text())["version"] == carbs_like.tuner.FORMAT_VERSION


def test_save_is_atomic_and_load_rejects_other_files(tmp_path):
    tuner = Tuner(small_space(), seed=0)
    run(tuner, 2)
    path = tuner.save(tmp_path / "t.json")
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temp files left behind
    data = json.loads(path.read_text())
    (tmp_path / "new.json").write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ValueError, match="version.*99.*upgrade carbs_like"):
        Tuner.load(tmp_path / "new.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:200])
    with pytest.raises(ValueError, match="corrupt JSON at line"):
        Tuner.load(tmp_path / "cut.json")
    del data["observations"]
    (tmp_path / "missing.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'observations'"):
        Tuner.load(tmp_path / "missing.json")


def test_pareto_front_matches_brute_force_and_groups_repeats():
    tuner = Tuner(small_space(), seed=0)
    rng = random.Random(0)
    configs = [tuner.space.to_configs(tuner.space.sobol(1, seed=9, skip=i))[0] for i in range(25)]
    for c in configs:
        tuner.add(c, loss=rng.uniform(2, 4), cost=rng.uniform(1, 100))
    tuner.add(configs[0], loss=0.0, cost=50.0)  # a repeat of config 0: the best mean, so on the front
    front = tuner.pareto_front()
    df = tuner.observations()
    grouped = df.assign(k=[str(sorted(r.items())) for r in df[tuner.space.names].to_dict("records")])
    grouped = grouped.groupby("k").agg(loss=("loss", "mean"), cost=("cost", "mean"))
    pts = list(zip(grouped["loss"], grouped["cost"]))
    expected = sorted(
        (c, l) for l, c in pts if not any(l2 <= l and c2 <= c and (l2 < l or c2 < c) for l2, c2 in pts)
    )
    assert len(front) == len(expected)
    assert front["cost"].tolist() == pytest.approx([c for c, _ in expected])
    assert front["loss"].tolist() == pytest.approx([l for _, l in expected])
    first_loss = df["loss"].iloc[0]
    repeated = front[front["n_runs"] == 2]
    assert len(repeated) == 1 and repeated["loss"].iloc[0] == pytest.approx(first_loss / 2)
    assert front["cost"].is_monotonic_increasing
    assert (front["n_runs"] >= 1).all()


def test_the_tuner_owns_its_randomness():
    torch.manual_seed(0)
    np.random.seed(0)
    t_expected, n_expected = torch.rand(2), np.random.rand(2)
    torch.manual_seed(0)
    np.random.seed(0)
    tuner = Tuner(small_space(), seed=0, settings=TunerSettings(n_candidates=200))
    run(tuner, 12)
    assert torch.equal(torch.rand(2), t_expected) and np.array_equal(np.random.rand(2), n_expected)
    # ... and the same seed gives the same search.
    again = Tuner(small_space(), seed=0, settings=TunerSettings(n_candidates=200))
    run(again, 12)
    pd.testing.assert_frame_equal(again.observations(), tuner.observations())


def test_max_suggestion_cost_caps_predicted_cost():
    cap = 6 * 5e6 * 1e6
    tuner = Tuner(small_space(), seed=0, settings=TunerSettings(n_candidates=300, max_suggestion_cost=cap, n_init=8))
    run(tuner, 8)
    for _ in range(6):
        trial = tuner.ask()
        assert trial.metadata["predicted_cost"] <= cap * 1.001 or trial.metadata["source"] == "rerun"
        loss, cost = objective(trial.config)
        tuner.tell(trial, loss=loss, cost=cost)


def test_settings_validate_themselves():
    with pytest.raises(ValueError, match="rerun_probability"):
        TunerSettings(rerun_probability=2.0)
    with pytest.raises(ValueError, match="max_suggestion_cost"):
        TunerSettings(max_suggestion_cost=-1.0)
    with pytest.raises(TypeError, match="SearchSpace"):
        Tuner({"lr": 1e-3}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        Tuner(small_space(), seed=-1)


def test_search_reaches_a_front_much_closer_to_the_truth_than_random_search():
    """On the synthetic LLM landscape, 60 trials of the tuner beat 60 uniformly random trials."""
    landscape = LLMLandscape()
    space = landscape.space()
    gaps, random_gaps = [], []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        tuner = Tuner(space, seed=seed, settings=TunerSettings(n_candidates=1000))
        for _ in range(60):
            trial = tuner.ask()
            loss, cost, failed = landscape.evaluate(trial.config, rng=rng)
            tuner.tell(trial, loss=loss, cost=cost, failed=failed)
        gaps.append(front_gap(tuner.observations(), landscape))
        U = torch.rand(60, space.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        rnd = pd.DataFrame(space.to_configs(U))
        rnd["status"] = ["ok" if landscape.loss(c) is not None else "failed" for c in rnd.to_dict("records")]
        random_gaps.append(front_gap(rnd, landscape))
    assert np.mean(gaps) < 0.85 * np.mean(random_gaps), (gaps, random_gaps)


def test_a_lost_run_is_recorded_and_charged_but_kept_out_of_the_models(tmp_path):
    tuner = Tuner(small_space(), seed=0, settings=TunerSettings(n_init=4, n_candidates=50, fit_maxiter=5))
    run(tuner, 6)
    trial = tuner.ask()
    lost = tuner.tell(trial, loss=None, cost=5.0, failed=True, metadata={"failure": "node"})
    diverged = tuner.add(trial.config, loss=None, cost=1.0, failed=True)
    assert lost.lost and not diverged.lost
    df = tuner.observations()
    assert len(df) == 8 and (df["status"] == "failed").sum() == 2  # both in the record
    data = tuner.observed_data()
    assert len(data) == 7 and int(data.failed.sum()) == 1  # only the divergence blames its config
    assert len(tuner.pareto_front()) >= 1
    tuner.save(tmp_path / "t.json")
    again = Tuner.load(tmp_path / "t.json")
    assert [o.lost for o in again.observed] == [o.lost for o in tuner.observed]
    assert again.ask().config == tuner.ask().config


def zero_space() -> SearchSpace:
    return SearchSpace(
        [LogParam("n_params", min=1e6, max=3e7), LogParam("weight_decay", min=1e-4, max=1.0, allow_zero=True)],
        scaling=["n_params"],
    )


def test_add_of_a_run_with_weight_decay_zero_survives_a_journal_reload(tmp_path):
    folder = tmp_path / "sweep"
    tuner = Tuner(zero_space(), seed=0, path=folder)
    tuner.add({"n_params": 2e6, "weight_decay": 0}, loss=3.1, cost=1e12)
    tuner.add({"n_params": 2e6, "weight_decay": 1e-2}, loss=3.2, cost=1e12)
    with pytest.raises(ValueError, match="weight_decay=1e-05 lies between 0 and its min"):
        tuner.add({"n_params": 2e6, "weight_decay": 1e-5}, loss=3.0, cost=1e12)
    tuner.close()
    resumed = Tuner.resume(folder)
    assert resumed.observations()["weight_decay"].tolist() == [0.0, 1e-2]
    assert resumed.space == zero_space()
    resumed.close()


def test_ask_finds_weight_decay_zero_when_the_loss_grows_with_it():
    tuner = Tuner(zero_space(), seed=0, settings=TunerSettings(n_candidates=300))
    asked = []
    for _ in range(24):
        trial = tuner.ask()
        wd, n = trial.config["weight_decay"], trial.config["n_params"]
        asked.append(wd)
        tuner.tell(trial, loss=3.0 + 1e3 / n**0.5 + 0.3 * math.log1p(wd / 1e-4), cost=6 * n * 1e6)
    assert 0.0 in asked
    assert (tuner.pareto_front()["weight_decay"] == 0.0).any()


def test_a_ready_trial_is_asked_again_only_once_the_observations_have_grown():
    from carbs_like.prefetch import is_stale

    assert not is_stale(10, 10, 1.1)
    assert is_stale(10, 11, 1.1)  # few observations: one more result is news
    assert not is_stale(60, 61, 1.1) and not is_stale(60, 65, 1.1)  # one of sixty is not
    assert is_stale(60, 66, 1.1)
    assert is_stale(60, 61, 1.0)  # refit_growth 1.0: every result


def test_a_script_that_ends_while_the_ask_ahead_thread_works_exits_cleanly(tmp_path):
    # Python kills daemon threads at exit; one killed inside torch aborts the process (status 134).
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import time
        import numpy as np
        from carbs_like import Tuner
        from carbs_like.prefetch import Prefetcher
        from carbs_like.testing import LLMLandscape

        land = LLMLandscape()
        tuner = Tuner(land.space(), seed=0)
        rng = np.random.default_rng(0)
        for config in land.space().to_configs(land.space().sobol(24, seed=0)):
            loss, cost, failed = land.evaluate(config, rng=rng)
            tuner.add(config, loss=loss, cost=cost, failed=failed)
        engine = Prefetcher(tuner, target=8)
        engine.wake()
        time.sleep(1.5)  # the worker is fitting or asking now
        print("exiting", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)
    assert "exiting" in done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
