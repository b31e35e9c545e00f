"""carbs_like.ray on a real two-node Ray cluster on one machine (``ray.cluster_utils.Cluster``, no mocks).

A head node and one worker node, one CPU each, so two concurrent trials run one per node. The worker
is removed mid-trial (its raylet killed, as when a machine dies) with and without Tune retries.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from ray.exceptions import ActorDiedError, ActorUnavailableError, NodeDiedError, RayTaskError  # noqa: E402

from carbs_like import Tuner  # noqa: E402
from carbs_like.cli.main import main  # noqa: E402
from carbs_like.ray import CarbsScheduler, CarbsSearcher  # noqa: E402
from carbs_like.ray.scheduler import failure_kind  # noqa: E402
from carbs_like.testing import LLMLandscape  # noqa: E402
from carbs_like.testing.trainables import landscape_trainable  # noqa: E402
from carbs_like.tuner import TunerSettings  # noqa: E402

SETTINGS = TunerSettings(n_init=6, n_candidates=100, fit_maxiter=10, rerun_probability=0.0)


class TwoNodes:
    """The cluster of the module, with one worker node whenever a test starts."""

    def __init__(self) -> None:
        # A dead node is noticed after 4 missed health checks of 0.5 s (Ray's default waits ~15 s).
        fast = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "include_dashboard": False, "_system_config": fast})
        self.worker = self.cluster.add_node(num_cpus=1)
        self.cluster.wait_for_nodes()
        self.wanted = False

    def ensure_worker(self) -> None:
        if self.worker is None:
            self.worker = self.cluster.add_node(num_cpus=1)
            self.cluster.wait_for_nodes()

    def remove_worker_once_a_trial_runs_on_it(self, node_dir: Path, *, then_add: bool) -> threading.Thread:
        """In a thread: once a trial has started on the worker, kill the worker node (no graceful
        shutdown), and optionally add a fresh worker. The thread's ``victim`` is that trial's Ray id."""
        worker = self.worker

        def run() -> None:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                started = glob.glob(str(node_dir / f"{worker.node_id}.*"))
                if started:
                    thread.victim = Path(started[0]).suffix[1:]
                    break
                time.sleep(0.02)
            time.sleep(0.4)  # mid-trial: it reports every 0.3 s for 1.2 s (3 s in the kill tests)
            self.cluster.remove_node(worker, allow_graceful=False)
            self.worker = None
            self.wanted = then_add  # added by AddWorker, in the driver's main thread (Ray needs it)

        thread = threading.Thread(target=run, daemon=True)
        thread.victim = None
        thread.start()
        return thread


@pytest.fixture(scope="module")
def two_nodes():
    root = str(Path(__file__).resolve().parents[1])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *([old] if old else [])])  # the nodes' workers
    nodes = TwoNodes()
    ray.init(address=nodes.cluster.address, log_to_driver=False, configure_logging=False)
    yield nodes
    ray.shutdown()
    nodes.cluster.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


class AddWorker(tune.Callback):
    """Adds a fresh worker node from Tune's driver loop once the killed one is wanted back."""

    def __init__(self, nodes: TwoNodes) -> None:
        self.nodes = nodes

    def __getstate__(self):  # Tune pickles callbacks into the experiment; the cluster stays here
        return {"nodes": None}

    def on_step_begin(self, iteration, trials, **info):
        if self.nodes is not None and self.nodes.wanted:
            self.nodes.wanted = False
            self.nodes.ensure_worker()


def run_search(tmp_path: Path, *, max_trials: int, max_failures: int, node_dir: Path, callbacks=(), steps: int = 4):
    searcher = CarbsSearcher(LLMLandscape().space(), settings=SETTINGS, max_trials=max_trials)
    grid = tune.Tuner(
        landscape_trainable,
        param_space={"steps": steps, "sleep": 0.3, "node_dir": str(node_dir)},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=CarbsScheduler(grace=1.0), num_samples=-1,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="exp", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  callbacks=list(callbacks)),
    ).fit()
    return searcher, grid


def nodes_of(node_dir: Path) -> dict[str, set[str]]:
    """Ray trial id -> the nodes it started on."""
    out: dict[str, set[str]] = {}
    for file in node_dir.iterdir():
        node, trial = file.name.split(".")
        out.setdefault(trial, set()).add(node)
    return out


def told_once(searcher: CarbsSearcher, grid) -> dict[str, object]:
    """Check every Ray trial is exactly one observation (and nothing is left pending)."""
    tuner = searcher.tuner
    by_ray_id = [o.metadata["ray_trial_id"] for o in tuner.observed]
    assert len(by_ray_id) == len(set(by_ray_id)), "a trial was told twice"
    assert len(by_ray_id) == len(grid)
    assert {r.metrics["trial_id"] for r in grid if r.metrics} <= set(by_ray_id)
    assert not tuner.pending
    return {o.metadata["ray_trial_id"]: o for o in tuner.observed}


def test_trials_are_placed_on_both_nodes(two_nodes, tmp_path):
    two_nodes.ensure_worker()
    node_dir = tmp_path / "nodes"
    node_dir.mkdir()
    searcher, grid = run_search(tmp_path, max_trials=4, max_failures=0, node_dir=node_dir)
    told_once(searcher, grid)
    used = set().union(*nodes_of(node_dir).values())
    assert used == {two_nodes.cluster.head_node.node_id, two_nodes.worker.node_id}


def test_a_node_killed_mid_trial_with_retries_tells_every_trial_once(two_nodes, tmp_path):
    two_nodes.ensure_worker()
    node_dir = tmp_path / "nodes"
    node_dir.mkdir()
    killer = two_nodes.remove_worker_once_a_trial_runs_on_it(node_dir, then_add=True)
    searcher, grid = run_search(tmp_path, max_trials=5, max_failures=1, node_dir=node_dir,
                                callbacks=[AddWorker(two_nodes)], steps=10)  # 3 s: still running when the node goes
    killer.join(timeout=30)
    observed = told_once(searcher, grid)
    assert len(nodes_of(node_dir)[killer.victim]) == 2  # started on the killed node, retried on another
    assert killer.victim in observed
    assert not any(o.lost for o in observed.values()), "Tune retried it: not a lost run"


def test_a_node_killed_mid_trial_without_retries_is_a_lost_run_kept_out_of_the_models(two_nodes, tmp_path):
    two_nodes.ensure_worker()
    dead_node = two_nodes.worker.node_id
    node_dir = tmp_path / "nodes"
    node_dir.mkdir()
    killer = two_nodes.remove_worker_once_a_trial_runs_on_it(node_dir, then_add=False)
    searcher, grid = run_search(tmp_path, max_trials=4, max_failures=0, node_dir=node_dir, steps=10)
    killer.join(timeout=30)
    observed = told_once(searcher, grid)
    victim = observed[killer.victim]
    assert victim.failed and victim.lost
    assert victim.metadata["failure"] == "node" and victim.metadata["reason"] == "node failure"
    assert victim.cost > 0  # charged what it burned
    started_on = nodes_of(node_dir)
    lost = [rid for rid, o in observed.items() if o.lost]
    assert all(started_on[rid] == {dead_node} for rid in lost)
    for rid, o in observed.items():  # trainable errors (divergences) stay failures of their config
        if o.failed and not o.lost:
            assert o.metadata["reason"] == "error" and "failure" not in o.metadata
    tuner = searcher.tuner
    data = tuner.observed_data()  # what the loss, cost and failure models see
    assert len(data) == len(observed) - len(lost)
    assert int(data.failed.sum()) == sum(o.failed and not o.lost for o in observed.values())
    assert searcher.spent >= sum(o.cost for o in observed.values()) * (1 - 1e-9)
    assert tuner.ask() is not None  # the search goes on


def test_failure_kind_tells_a_dead_node_from_a_raising_trainable():
    assert failure_kind(ActorUnavailableError("socket closed", b"a" * 16)) == "node"
    assert failure_kind(NodeDiedError("node 1 is dead")) == "node"
    assert failure_kind(ActorDiedError()) == "error"  # unknown cause: the config is not cleared
    try:
        raise RuntimeError("diverged: lr=1 is too high")
    except RuntimeError as e:
        assert failure_kind(RayTaskError("train", "traceback", e)) == "error"
    assert failure_kind(None) == "error"


class CrashDriver(tune.Callback):
    """Raises in the driver loop once ``after`` trials have ended, if ``marker`` exists (once)."""

    def __init__(self, marker: str, after: int):
        self.marker, self.after = marker, after

    def on_step_begin(self, iteration, trials, **info):
        if sum(t.status in ("TERMINATED", "ERROR") for t in trials) >= self.after and os.path.exists(self.marker):
            os.remove(self.marker)
            raise RuntimeError("simulated driver crash")


@pytest.mark.parametrize("errored", ["restart_errored", "resume_errored"])
def test_the_driver_crashes_and_restore_continues_the_same_journaled_search(two_nodes, tmp_path, monkeypatch,
                                                                             capsys, errored):
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # checkpoint every step, as Ray's own tests do
    two_nodes.ensure_worker()
    crash, fail = tmp_path / "crash", tmp_path / "fail"
    crash.touch()
    fail.touch()
    journal = tmp_path / "ray" / "exp" / "journal"  # beside Ray's experiment state
    searcher = CarbsSearcher(LLMLandscape().space(), settings=SETTINGS, max_trials=7, path=journal)
    with pytest.raises(Exception, match="Tune run failed|simulated driver crash"):
        tune.Tuner(
            landscape_trainable, param_space={"steps": 3, "sleep": 0.2, "fail_marker": str(fail)},
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=CarbsScheduler(grace=1.0), num_samples=-1,
                                        max_concurrent_trials=2),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name="exp", verbose=0,
                                      callbacks=[CrashDriver(str(crash), after=3)]),
        ).fit()
    searcher.close()  # what the dying driver's exit does: the journal's lock is free
    before = {o.trial_id: o.to_dict() for o in Tuner.read(journal).observed}
    assert 0 < len(before) < 7

    experiment = str(tmp_path / "ray" / "exp")
    grid = tune.Tuner.restore(experiment, trainable=landscape_trainable, **{errored: True}).fit()
    journaled = Tuner.read(journal)  # the restored searcher (inside Tune) kept journaling
    final = CarbsSearcher.from_experiment(experiment).tuner
    rows = {o.trial_id: o.to_dict() for o in journaled.observed}
    assert rows == {o.trial_id: o.to_dict() for o in final.observed}  # journal == Ray's last checkpoint
    assert all(rows[tid] == row for tid, row in before.items())  # nothing lost or changed
    assert not journaled.pending
    by_ray_id: dict[str, list] = {}
    for o in journaled.observed:
        by_ray_id.setdefault(o.metadata["ray_trial_id"], []).append(o)
    assert {r.metrics["trial_id"] for r in grid if r.metrics} <= set(by_ray_id)
    errored_before = {row["metadata"]["ray_trial_id"] for row in before.values() if row["failed"]}
    assert errored_before  # the fail_marker crash at least
    for rid, runs in by_ray_id.items():  # told once; an errored trial Tune resumed is a new run
        again = errored == "resume_errored" and rid in errored_before
        assert len(runs) == (2 if again else 1)
        assert runs[0].failed or not again
    suggested = [t for t in journaled.trials if t.metadata.get("source") != "add" and t.id in rows]
    assert len(suggested) == 7  # the same search went on, to its 7 suggestions
    assert main(["status", experiment]) == 0  # carbs-like status reads the Ray experiment's journal
    assert f"{len(rows)} trials" in capsys.readouterr().out
