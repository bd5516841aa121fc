"""Group commit keeps the semantics of saving one command at a time (no I/O here)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from domain.persistence.group_commit import GroupCommitter


class FakeAggregate:
    def __init__(self, id_: str, events: int = 1) -> None:
        self.id = id_
        self._pending = [f"{id_}-e{i}" for i in range(events)]

    def collect_events(self):
        pending, self._pending = self._pending, []
        return pending


class FakeStore:
    """Records each transaction; the first can be held open to let others queue up."""

    def __init__(self, hold_first: bool = False, fail_when=None) -> None:
        self.transactions: list[list[str]] = []
        self.position = 0
        self.gate = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.gate.set()
        self.fail_when = fail_when or (lambda events: False)

    def save(self, *events, after_insert=()):
        self.entered.set()
        self.gate.wait(5)
        if self.fail_when(events):
            raise RuntimeError(f"conflict in {events}")
        positions = list(range(self.position + 1, self.position + 1 + len(events)))
        for hook in after_insert:
            hook(None, positions)
        self.position += len(events)
        self.transactions.append(list(events))
        return [SimpleNamespace(notification=SimpleNamespace(id=p)) for p in positions]


def submit(committer, aggregate, results, hooks=()):
    def run():
        try:
            results[aggregate.id] = [r.notification.id for r in committer.save([aggregate],
                                                                               hooks)]
        except Exception as exc:
            results[aggregate.id] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_queued(committer, n):
    deadline = time.monotonic() + 5
    while len(committer._queue) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(committer._queue) == n


def test_commands_queued_behind_a_transaction_share_the_next_one():
    store = FakeStore(hold_first=True)
    global_calls = []
    committer = GroupCommitter(store.save, [lambda tx, pos: global_calls.append(list(pos))])
    results: dict = {}
    seen: dict = {}
    threads = [submit(committer, FakeAggregate("a"), results)]
    store.entered.wait(5)
    for name, events in (("b", 2), ("c", 1), ("d", 3)):
        hook = (lambda tx, pos, n=name: seen.__setitem__(n, list(pos)),)
        threads.append(submit(committer, FakeAggregate(name, events), results, hook))
    wait_queued(committer, 3)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    committer.close()
    assert store.transactions == [["a-e0"], ["b-e0", "b-e1", "c-e0", "d-e0", "d-e1", "d-e2"]]
    assert results == {"a": [1], "b": [2, 3], "c": [4], "d": [5, 6, 7]}
    assert seen == {"b": [2, 3], "c": [4], "d": [5, 6, 7]}  # each hook: its own positions
    assert global_calls == [[1], [2, 3, 4, 5, 6, 7]]  # global hooks: once per transaction
    assert committer.largest_batch == 3


def test_two_commands_on_one_aggregate_never_share_a_transaction():
    store = FakeStore(hold_first=True)
    committer = GroupCommitter(store.save, [])
    results: dict = {}
    threads = [submit(committer, FakeAggregate("x"), results)]
    store.entered.wait(5)
    first, second = FakeAggregate("task"), FakeAggregate("task")
    second._pending = ["task-e0-again"]
    threads.append(submit(committer, first, results))
    wait_queued(committer, 1)
    threads.append(submit(committer, second, {}))
    threads.append(submit(committer, FakeAggregate("y"), results))
    wait_queued(committer, 3)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    committer.close()
    assert store.transactions == [["x-e0"], ["task-e0", "y-e0"], ["task-e0-again"]]


def test_a_failed_batch_is_retried_command_by_command():
    store = FakeStore(hold_first=True, fail_when=lambda events: "bad-e0" in events)
    committer = GroupCommitter(store.save, [])
    results: dict = {}
    threads = [submit(committer, FakeAggregate("a"), results)]
    store.entered.wait(5)
    for name in ("b", "bad", "c"):
        threads.append(submit(committer, FakeAggregate(name), results))
    wait_queued(committer, 3)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    committer.close()
    assert results["b"] == [2] and results["c"] == [3]
    assert isinstance(results["bad"], RuntimeError)
    assert store.transactions == [["a-e0"], ["b-e0"], ["c-e0"]]


def test_saving_after_close_is_refused():
    committer = GroupCommitter(FakeStore().save, [])
    committer.close()
    with pytest.raises(RuntimeError, match="closed"):
        committer.save([FakeAggregate("a")], ())
