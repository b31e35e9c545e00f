"""Property-based tests: random bad input to tell, add, space construction, load and resume gives
a clear exception or a recorded failure, and leaves the observations unchanged otherwise. Plus the
models' numerical faults: extreme inputs still give a valid ask(), with any fallback reported."""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from carbs_like import ChoiceParam, LinearParam, LogitParam, LogParam, SearchSpace, Tuner, TunerSettings
from carbs_like.journal import JOURNAL_FILE

QUICK = TunerSettings(n_init=4, n_candidates=40, fit_maxiter=8, max_fit_points=16)
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_space() -> SearchSpace:
    return SearchSpace(
        [
            LogParam("n_params", min=1e6, max=1e8),
            LogParam("lr", center=1e-3),
            LogParam("batch_size", min=8, max=4096, integer=True, multiple=8),
            ChoiceParam("schedule", ["cosine", "wsd"]),
        ],
        scaling=["n_params"],
    )


def started_tuner(**kwargs) -> Tuner:
    """A tuner with two observations and two pending trials (all in the Sobol phase: no fitting)."""
    tuner = Tuner(make_space(), seed=0, **kwargs)
    for i in range(2):
        tuner.tell(tuner.ask(), loss=3.0 - i, cost=1.0 + i)
    tuner.ask(), tuner.ask()
    return tuner


def snapshot(tuner: Tuner) -> tuple:
    return (
        json.dumps([o.to_dict() for o in tuner._observations]),
        [t.id for t in tuner.pending],
        tuner._next_id,
    )


# Any JSON-ish or non-JSON junk a caller might pass.
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
    st.just(float("nan")),
    st.just(-1.0),
    st.just(0.0),
)
numbers_ = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), junk)


# ------------------------------------------------------------------------------ tell / add ----
@FEW
@given(
    which=st.one_of(st.sampled_from(["pending", "told"]), junk),
    loss=numbers_,
    cost=numbers_,
    failed=st.one_of(st.booleans(), junk),
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=3), junk, max_size=2)),
)
def test_tell_with_bad_input_raises_or_records_and_changes_nothing_else(which, loss, cost, failed, metadata):
    tuner = started_tuner()
    trial = {"pending": tuner.pending[0], "told": 0}.get(which, which) if isinstance(which, str) else which
    before = snapshot(tuner)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            obs = tuner.tell(trial, loss=loss, cost=cost, failed=failed, metadata=metadata)
    except (TypeError, ValueError, KeyError) as e:
        assert str(e), "the error must say what is wrong"
        assert snapshot(tuner) == before
        return
    # Accepted: exactly one new observation, well formed; the trial is no longer pending.
    assert len(tuner._observations) == len(json.loads(before[0])) + 1
    assert obs.trial_id not in [t.id for t in tuner.pending]
    assert math.isfinite(obs.cost) and obs.cost > 0
    assert (obs.loss is None) == obs.failed
    assert obs.loss is None or math.isfinite(obs.loss)
    json.dumps(obs.to_dict(), allow_nan=False)


config_values = st.one_of(
    st.floats(min_value=1e5, max_value=1e9),
    st.sampled_from(["cosine", "wsd", "adam"]),
    st.integers(0, 5000),
    junk,
)


@FEW
@given(
    config=st.one_of(
        st.fixed_dictionaries(
            {"n_params": config_values, "lr": config_values, "batch_size": config_values, "schedule": config_values}
        ),
        st.dictionaries(st.sampled_from(["n_params", "lr", "batch_size", "schedule", "extra"]), config_values),
        junk,
    ),
    loss=numbers_,
    cost=numbers_,
)
def test_add_with_bad_input_raises_or_records_a_valid_observation(config, loss, cost):
    tuner = started_tuner()
    before = snapshot(tuner)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            obs = tuner.add(config, loss=loss, cost=cost, failed=False)
    except (TypeError, ValueError) as e:
        assert str(e)
        assert snapshot(tuner) == before
        return
    assert tuner.space.validate(obs.config) == obs.config
    assert tuner._observations[-1] == obs and obs.trial_id == before[2]
    assert math.isfinite(obs.cost) and obs.cost > 0


# ------------------------------------------------------------------------ space construction ----
param_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "min": numbers_,
        "max": numbers_,
        "center": numbers_,
        "scale": numbers_,
        "integer": st.one_of(st.booleans(), junk),
        "multiple": st.one_of(st.integers(-2, 16), junk),
    },
)


@FEW
@given(
    kind=st.sampled_from([LogParam, LinearParam, LogitParam]),
    name=st.one_of(st.sampled_from(["lr", "x"]), junk),
    kwargs=param_kwargs,
    scaling=st.one_of(st.just([]), st.just(["lr"]), st.just(["x"]), st.just(["nope"]), junk),
)
def test_space_construction_raises_clearly_or_gives_a_space_that_round_trips(kind, name, kwargs, scaling):
    try:
        param = kind(name, **kwargs)
        space = SearchSpace([param, ChoiceParam("c", ["a", "b"])], scaling=scaling)
    except (TypeError, ValueError) as e:
        assert str(e)
        return
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
    for config in space.to_configs(space.sobol(8, seed=0)):
        assert space.validate(config) == config


@FEW
@given(data=st.recursive(junk, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                         max_leaves=8))
def test_space_from_random_data_raises_a_value_error(data):
    try:
        SearchSpace.from_dict(data)
    except ValueError as e:
        assert str(e)


# ------------------------------------------------------------------------------ load / resume ----
def paths(obj, prefix=()):
    """Every (path, value) in nested JSON data."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, (*prefix, i))


def edited(data, path, action, value):
    data = json.loads(json.dumps(data))
    if not path:
        return value
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


json_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), st.text(max_size=4),
    st.just([]), st.just({}), st.just(-1), st.just(10**6),
)

# One saved checkpoint, shared by the examples (the tuner is only read).
_SAVED: dict = {}


def saved_state() -> dict:
    if not _SAVED:
        tuner = started_tuner(settings=QUICK)
        tuner.add({"n_params": 2e6, "lr": 1e-3, "batch_size": 64, "schedule": "wsd"}, loss=None, cost=2.0, failed=True)
        _SAVED.update(tuner.state_dict())
    return json.loads(json.dumps(_SAVED))


@FEW
@given(pick=st.integers(0, 10**6), action=st.sampled_from(["delete", "replace"]), value=json_junk)
def test_load_of_an_edited_checkpoint_raises_a_value_error_or_loads_valid_state(pick, action, value):
    state = saved_state()
    all_paths = [p for p, _ in paths(state)]
    path = all_paths[pick % len(all_paths)]
    assume(path or action == "replace")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "tuner.json"
        file.write_text(json.dumps(edited(state, path, action, value)))
        try:
            tuner = Tuner.load(file)
        except ValueError as e:
            assert str(e).startswith(str(file)), "the error names the file"
            return
    # Loaded: the state is consistent (e.g. an edit of metadata, or a value replaced by an equal one).
    for obs in tuner._observations:
        assert tuner.space.validate(obs.config) == obs.config
        assert obs.trial_id in tuner._trials
    assert all(t.id < tuner._next_id for t in tuner._trials.values())


@FEW
@given(cut=st.floats(0.0, 1.0))
def test_load_of_a_truncated_checkpoint_is_a_value_error(cut):
    text = json.dumps(saved_state())
    n = int(cut * (len(text) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "tuner.json"
        file.write_text(text[:n])
        with pytest.raises(ValueError, match="not a valid checkpoint"):
            Tuner.load(file)


_JOURNAL: dict = {}


def journal_bytes() -> tuple[bytes, list[int]]:
    """A journal of asks, tells, an add and a forget, and the trial ids it observes, in order."""
    if not _JOURNAL:
        with tempfile.TemporaryDirectory() as tmp:
            tuner = started_tuner(settings=QUICK, path=tmp)
            tuner.add({"n_params": 2e6, "lr": 1e-3, "batch_size": 64, "schedule": "wsd"}, loss=2.0, cost=2.0)
            tuner.forget(tuner.pending[0])
            tuner.tell(tuner.pending[0], loss=None, cost=1.0, failed=True)
            tuner.close()
            _JOURNAL["bytes"] = (Path(tmp) / JOURNAL_FILE).read_bytes()
            _JOURNAL["ids"] = [o.trial_id for o in tuner._observations]
    return _JOURNAL["bytes"], _JOURNAL["ids"]


@FEW
@given(cut=st.integers(0, 10**6))
def test_a_journal_cut_anywhere_after_its_header_resumes_a_prefix_of_the_events(cut):
    data, ids = journal_bytes()
    header_end = data.index(b"\n") + 1
    n = header_end + cut % (len(data) - header_end + 1)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / JOURNAL_FILE).write_bytes(data[:n])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the torn-line warning
            tuner = Tuner.resume(tmp)
        got = [o.trial_id for o in tuner._observations]
        tuner.close()
        assert got == ids[: len(got)]
        # The repaired file ends on a complete event, so it replays the same without warnings.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = Tuner.resume(tmp)
        assert [o.trial_id for o in again._observations] == got
        again.close()


@FEW
@given(line=st.integers(0, 100), pick=st.integers(0, 10**6), action=st.sampled_from(["delete", "replace"]),
       value=json_junk)
def test_an_edited_journal_line_raises_a_value_error_naming_the_line_or_resumes(line, pick, action, value):
    data, _ = journal_bytes()
    lines = data.decode().splitlines(keepends=True)
    i = line % len(lines)
    record = json.loads(lines[i])
    all_paths = [p for p, _ in paths(record)]
    path = all_paths[pick % len(all_paths)]
    assume(path or action == "replace")
    lines[i] = json.dumps(edited(record, path, action, value)) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / JOURNAL_FILE).write_text("".join(lines))
        try:
            Tuner.resume(tmp).close()
        except ValueError as e:
            # The edited line, or a later one that it made inconsistent (e.g. a param removed from
            # the header's space), never an earlier one.
            named = re.search(r"line (\d+)", str(e))
            assert named is not None and int(named.group(1)) >= i + 1, str(e)


# ------------------------------------------------------------------------- numerical faults ----
def extreme_observations(case: str) -> list[tuple[dict, float | None, float]]:
    space = make_space()
    configs = space.to_configs(space.sobol(12, seed=1))
    if case == "huge and tiny costs":
        return [(c, 3.0 + 0.1 * i, 1e30 if i % 2 else 1e-30) for i, c in enumerate(configs)]
    if case == "huge and tiny losses":
        return [(c, 1e30 if i % 2 else 1e-30, 1.0 + i) for i, c in enumerate(configs)]
    if case == "equal losses":
        return [(c, 2.5, 1.0 + i) for i, c in enumerate(configs)]
    if case == "duplicate configs":
        return [(configs[i % 2], 3.0 + 0.01 * i, 1.0 + (i % 2)) for i in range(12)]
    if case == "one success among failures":
        return [(c, 3.0 if i == 0 else None, 1.0 + i) for i, c in enumerate(configs)]
    if case == "losses near the float limits":
        return [(c, 1.7e308 if i % 2 else -1.7e308, 1.0 + i) for i, c in enumerate(configs)]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["huge and tiny costs", "huge and tiny losses", "equal losses", "duplicate configs",
     "one success among failures", "losses near the float limits"],
)
def test_ask_gives_a_valid_config_on_extreme_observations_and_reports_any_fallback(case):
    tuner = Tuner(make_space(), seed=0, settings=QUICK)
    for config, loss, cost in extreme_observations(case):
        tuner.add(config, loss=loss, cost=cost, failed=loss is None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials = [tuner.ask() for _ in range(2)]
    for trial in trials:
        assert tuner.space.validate(trial.config) == trial.config
        for key in ("predicted_loss", "predicted_cost", "p_success"):
            value = trial.metadata.get(key)
            assert value is None or math.isfinite(value), f"{key} = {value}"
    notes = [n for t in trials for n in t.metadata.get("model_notes", [])]
    assert all(any(n in str(w.message) for w in caught) for n in notes), "a fallback in metadata is also logged"
    if case == "losses near the float limits":
        assert any("clipped" in n for n in notes), "the clipping of extreme losses is reported"
    assert trials[0].config != trials[1].config
    assert torch.get_default_dtype() == torch.float32  # nothing changed global torch state


def nan_predictions(share: float):
    """Wrap ``Surrogate.p_success`` so that a share of the candidates get NaN (a model fault);
    small batches (the gradient steps) keep their predictions."""
    from carbs_like.surrogate import Surrogate

    original = Surrogate.p_success

    def p_success(self, X):
        p = original(self, X)
        bad = torch.arange(X.shape[0]) % 10 < 10 * share if X.shape[0] >= 10 else torch.zeros(X.shape[0], dtype=torch.bool)
        return torch.where(bad, torch.full_like(p, math.nan), p)

    return p_success


def fitted_tuner() -> Tuner:
    tuner = Tuner(make_space(), seed=0, settings=TunerSettings(**{**QUICK.__dict__, "rerun_probability": 0.0}))
    for config, loss, cost in extreme_observations("equal losses")[:6]:
        tuner.add(config, loss=loss + cost * 0.01, cost=cost)
    return tuner


def test_candidates_scored_nan_are_skipped_and_reported(monkeypatch):
    from carbs_like.surrogate import Surrogate

    tuner = fitted_tuner()
    monkeypatch.setattr(Surrogate, "p_success", nan_predictions(0.5))
    with pytest.warns(RuntimeWarning, match="scored NaN"):
        trial = tuner.ask()
    assert trial.metadata["source"] == "acquisition" and "scored NaN" in trial.metadata["note"]
    assert tuner.space.validate(trial.config) == trial.config


def test_when_no_candidate_has_a_finite_score_ask_falls_back_to_sobol_and_says_so(monkeypatch):
    from carbs_like.surrogate import Surrogate

    tuner = fitted_tuner()
    monkeypatch.setattr(Surrogate, "p_success", nan_predictions(1.0))
    with pytest.warns(RuntimeWarning, match="no candidate has a finite score; asked a Sobol point"):
        trial = tuner.ask()
    assert trial.metadata["source"] == "sobol" and "NaN" in trial.metadata["fallback"]
    assert tuner.space.validate(trial.config) == trial.config
