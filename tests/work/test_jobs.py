"""The job board: real pruning work deduplicated across threads, ordered by who waits, partial results, errors,
pause and resume; and the process-wide plan cache its tasks share."""

import threading
import time

import pytest

from obd.core.pruning import prune
from obd.methods.registry import cached_plan, calibration
from obd.runtime.evaluate import evaluate
from obd.work.jobs import SCHEDULER_ENV, JobBoard, check_scheduler, executor, scheduler_address

SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)


def point(net, x, y, k, started=None, gate=None, name=None):
    """A real task: prune at k and evaluate; optionally says when it starts and waits for a gate first."""

    def run():
        if started is not None:
            started.append(name if name is not None else k)
        if gate is not None:
            assert gate.wait(60), "the test never opened the gate"
        return evaluate(prune(net, k, "weight").net, x, y).accuracy

    return run


def until(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def blocked(board, started, gate):
    """Occupy a one-worker board until `gate` opens, so that the order of the tasks queued behind can be read."""
    blocker = board.submit("blocker", [lambda: (started.append("blocker"), gate.wait(60))])
    until(lambda: started == ["blocker"])
    return blocker


@pytest.fixture(scope="module")
def data(mnist):
    return mnist.x_test[:1000], mnist.y_test[:1000]


def test_one_job_per_key_across_threads_each_task_runs_once(small_net, data):
    x, y = data
    ran = []
    with JobBoard(workers=2) as board:
        jobs, barrier = [], threading.Barrier(6)

        def ask():
            barrier.wait()
            jobs.append(board.submit("curve", [point(small_net, x, y, k, ran) for k in SPARSITIES], label="curve"))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        job = jobs[0]
        assert all(j is job for j in jobs) and board.get("curve") is job
        assert job.wait(60) and job.finished and job.error is None
        assert sorted(ran) == sorted(SPARSITIES), "every task ran exactly once"
        assert job.results() == {
            i: evaluate(prune(small_net, k, "weight").net, x, y).accuracy for i, k in enumerate(SPARSITIES)
        }
        assert job.done == job.total == len(SPARSITIES) and job.eta_s == 0 and job.elapsed_s > 0
        assert board.submit("curve", []) is job, "a finished job is returned, not redone"
        assert not board.busy()


def test_the_most_recently_touched_job_goes_first_its_first_task_first(small_net, data):
    x, y = data
    started, gate = [], threading.Event()
    with JobBoard(workers=1) as board:
        blocker = blocked(board, started, gate)
        assert board.busy()
        b = board.submit(
            "b", [point(small_net, x, y, k, started, name=("b", i)) for i, k in enumerate(SPARSITIES)], first=3
        )
        c = board.submit("c", [point(small_net, x, y, k, started, name=("c", i)) for i, k in enumerate(SPARSITIES)])
        board.touch("b")  # b's user still waits and touched last: all of b before c
        board.touch("c", first=4)  # now c is the latest, its task 4 first ...
        board.touch("b", first=1)  # ... until b is touched again, asking for its task 1
        gate.set()
        assert blocker.wait(60) and b.wait(60) and c.wait(60)
    assert started == [
        "blocker",
        ("b", 1),
        ("b", 3),
        ("b", 0),
        ("b", 2),
        ("b", 4),
        ("c", 4),
        ("c", 0),
        ("c", 1),
        ("c", 2),
        ("c", 3),
    ]
    with pytest.raises(ValueError, match="task index"):
        JobBoard().submit("x", [lambda: 1], first=1)


def test_results_fill_in_while_a_task_still_runs(small_net, data):
    x, y = data
    gate = threading.Event()
    tasks = [point(small_net, x, y, k) for k in SPARSITIES[:-1]] + [point(small_net, x, y, 0.99, gate=gate)]
    with JobBoard(workers=2) as board:
        job = board.submit("curve", tasks)
        until(lambda: job.done == len(SPARSITIES) - 1)
        partial = job.results()
        assert sorted(partial) == list(range(len(SPARSITIES) - 1)) and not job.finished
        assert partial[0] == evaluate(small_net, x, y).accuracy
        assert job.running == 1 and board.busy() and job.eta_s is not None and job.eta_s > 0
        assert not job.wait(0.05)
        gate.set()
        assert job.wait(60) and job.finished and len(job.results()) == len(SPARSITIES)
        until(lambda: not board.busy())


def test_a_failing_task_stops_its_job_and_says_why(small_net, data):
    x, y = data
    started = []
    with JobBoard(workers=1) as board:
        job = board.submit(
            "bad",
            [
                point(small_net, x, y, 0.5, started),
                point(small_net, x, y, 1.5, started),
                point(small_net, x, y, 0.9, started),
            ],
        )
        assert job.wait(60)
        assert "ValueError" in job.error and "[0, 1]" in job.error and isinstance(job.exception(), ValueError)
        assert started == [0.5, 1.5], "nothing starts after the failure"
        assert not job.finished and job.eta_s is None and list(job.results()) == [0]
        again = board.submit("bad", [point(small_net, x, y, 0.9)])
        assert again is not job, "a failed job is not returned: submitting again retries"
        assert again.wait(60) and again.error is None and again.finished


def test_work_nobody_waits_for_pauses_and_resumes_when_touched(small_net, data):
    x, y = data
    started, gate = [], threading.Event()
    tasks = [point(small_net, x, y, 0.0, started, gate)] + [point(small_net, x, y, k, started) for k in SPARSITIES[1:]]
    with JobBoard(workers=1, idle_s=0.3) as board:
        job = board.submit("curve", tasks)
        until(lambda: started == [0.0])
        time.sleep(0.5)  # nobody touches it past idle_s
        assert job.paused
        gate.set()
        until(lambda: job.done == 1)
        time.sleep(0.2)
        assert started == [0.0] and job.paused and not job.finished and not board.busy()
        assert board.submit("curve", tasks) is job  # asking again resumes it ...
        until(lambda: board.touch("curve") or job.finished)  # ... for as long as someone keeps waiting
        assert not job.paused
        assert started == list(SPARSITIES) and list(job.results().values())[0] == evaluate(small_net, x, y).accuracy


def test_cancel_and_forget(small_net, data):
    x, y = data
    gate = threading.Event()
    with JobBoard(workers=1) as board:
        job = board.submit("curve", [point(small_net, x, y, 0.0, gate=gate), point(small_net, x, y, 0.5)])
        board.cancel("curve")
        assert job.error == "cancelled" and job.wait(0)
        gate.set()
        until(lambda: not board.busy())
        assert 1 not in job.results()
        board.forget("curve")
        assert board.get("curve") is None


def test_executor_and_board_arguments_are_checked(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert scheduler_address() is None
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert scheduler_address() == "tcp://10.0.0.5:8786" and scheduler_address("tcp://h:1") == "tcp://h:1"
    with pytest.raises(ValueError, match="tcp://"):
        executor("10.0.0.5:8786")
    with pytest.raises(ValueError, match="workers"):
        JobBoard(workers=0)
    with pytest.raises(ValueError, match="idle_s"):
        JobBoard(idle_s=0)


@pytest.mark.parametrize("bad", ["10.0.0.5:8786", "", "tcp://", None, 8786, ["tcp://h:1"], b"tcp://h:1"], ids=repr)
def test_check_scheduler_refuses_every_bad_address(bad):
    with pytest.raises(ValueError, match="a Dask scheduler address looks like tcp://10.0.0.5:8786; got"):
        check_scheduler(bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None, "2", [1]], ids=repr)
def test_bad_worker_counts_are_refused(bad):
    with pytest.raises(ValueError, match="workers must be a whole number of at least 1, got"):
        JobBoard(workers=bad)
    with pytest.raises(ValueError, match="workers must be a whole number of at least 1, got"):
        executor(workers=bad)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), True, None, "60"], ids=repr)
def test_bad_idle_times_are_refused(bad):
    with pytest.raises(ValueError, match="idle_s must be a number of seconds greater than 0"):
        JobBoard(idle_s=bad)


def test_cached_plan_builds_each_plan_once_across_threads(small_net, mnist):
    calib = calibration(mnist, 256)
    plans, barrier = [], threading.Barrier(4)

    def ask():
        barrier.wait()
        plans.append(cached_plan(small_net, "obd", "unit", "layer", False, calib))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p is plans[0] for p in plans), "one build, shared"
    same_sample = calibration(mnist, 256)  # an equal sample, another object: the same plan
    assert cached_plan(small_net, "obd", "unit", "layer", False, same_sample) is plans[0]
    assert cached_plan(small_net, "obd", "unit", "layer", False, calibration(mnist, 256, seed=1)) is not plans[0]
    assert cached_plan(small_net, "obd", "unit", "global", False, calib) is not plans[0]
    split = cached_plan(small_net, "magnitude", "weight", "loss-aware", False, calib)  # reads the sample too
    assert cached_plan(small_net, "magnitude", "weight", "loss-aware", False, same_sample) is split
    assert (
        cached_plan(small_net, "magnitude", "weight", "loss-aware", False, calibration(mnist, 256, seed=1)) is not split
    )
    masks = plans[0].prune(0.5).masks
    from obd.methods.registry import plan

    assert all((a == b).all() for a, b in zip(masks, plan(small_net, "obd", "unit", calib=calib).prune(0.5).masks))


def test_quiet_for_counts_from_the_last_task_and_is_zero_while_one_runs():
    """What the app's main board waits on before starting (ui.services.boards.behind_quick)."""
    release = threading.Event()
    with JobBoard(workers=1) as board:
        time.sleep(0.05)
        assert board.quiet_for() >= 0.05  # counted from the board's making
        job = board.submit("k", [release.wait])
        assert board.quiet_for() == 0.0
        release.set()
        assert job.wait(10)
        time.sleep(0.05)
        assert 0.05 <= board.quiet_for() < 5


def test_a_held_job_starts_nothing_until_its_hold_lets_go_while_other_jobs_run():
    """What the app's curves and timings do while a model trains (ui.services.boards.training)."""
    training = threading.Event()
    training.set()
    with JobBoard(workers=1) as board:
        held = board.submit("curve", [lambda: "c0", lambda: "c1"], hold=training.is_set)
        other = board.submit("point", [lambda: "p"])
        assert other.wait(10) and other.results() == {0: "p"}  # not stuck behind the held job
        time.sleep(0.05)
        assert held.held and held.done == 0 and not held.finished
        board.touch("curve")
        time.sleep(0.05)
        assert held.done == 0  # a touch while held starts nothing
        training.clear()
        assert not held.held
        board.touch("curve")  # a page still waiting for it: the board looks again
        assert held.wait(10) and held.results() == {0: "c0", 1: "c1"}
        assert not held.held


def test_a_job_of_higher_priority_goes_before_more_recently_touched_ones(small_net, data):
    """A point a page waits for goes before the curves that many pages touch (ui.services.results.point)."""
    x, y = data
    started, gate = [], threading.Event()
    with JobBoard(workers=1) as board:
        blocker = blocked(board, started, gate)
        curve = board.submit(
            "curve", [point(small_net, x, y, k, started, name=("curve", i)) for i, k in enumerate(SPARSITIES[:3])]
        )
        urgent = board.submit("point", [point(small_net, x, y, 0.9, started, name="point")], priority=1)
        board.touch("curve")  # touched last, but of lower priority
        gate.set()
        assert blocker.wait(60) and curve.wait(60) and urgent.wait(60)
    assert started == ["blocker", "point", ("curve", 0), ("curve", 1), ("curve", 2)]


def test_waited_for_jobs_of_priority_go_in_the_order_they_came_then_the_abandoned(monkeypatch):
    """30 pages touching their own points twice a second must not turn the queue into a lottery; a point whose page
    moved on (not touched for WAITING_S) goes after those still waited for, and after a curve touched since."""
    from obd.work import jobs

    monkeypatch.setattr(jobs, "WAITING_S", 0.3)
    started, gate = [], threading.Event()
    with JobBoard(workers=1) as board:
        blocked(board, started, gate)
        task = lambda name: lambda: started.append(name)  # noqa: E731
        board.submit("abandoned", [task("abandoned")], priority=1)
        time.sleep(0.4)  # its page moved on
        board.submit("curve", [task("curve")])  # watched, of priority 0
        for name in ("first", "second", "third"):
            board.submit(name, [task(name)], priority=1)
        board.touch("third")
        board.touch("first")
        board.touch("second")  # touched last, but came second
        gate.set()
        until(lambda: len(started) == 6)
    assert started == ["blocker", "first", "second", "third", "curve", "abandoned"]
