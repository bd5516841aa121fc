"""Group commit keeps the semantics of saving one command at a time (no I/O here)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from eventsourcing.persistence import OperationalError

from domain.persistence.group_commit import GroupCommitter


class FakeEvent(str):
    """An event's name, carrying the originator and version a store checks."""

    def __new__(cls, name: str, originator_id: str, originator_version: int) -> FakeEvent:
        event = super().__new__(cls, name)
        event.originator_id, event.originator_version = originator_id, originator_version
        return event


class FakeAggregate:
    def __init__(self, id_: str, events: int = 1, version: int = 1) -> None:
        self.id = id_
        self._pending = [FakeEvent(f"{id_}-e{i}", id_, version + i) for i in range(events)]

    def collect_events(self):
        pending, self._pending = self._pending, []
        return pending


class FakeStore:
    """Records each transaction; the first can be held open to let others queue up."""

    def __init__(self, hold_first: bool = False, fail_when=None) -> None:
        self.transactions: list[list[str]] = []  # committed
        self.attempted: list[list[str]] = []  # committed or not
        self.versions: dict[str, int] = {}  # the last version of each aggregate
        self.position = 0
        self.gate = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.gate.set()
        self.fail_when = fail_when or (lambda events: False)

    def save(self, *events, after_insert=()):
        self.entered.set()
        self.gate.wait(5)
        self.attempted.append(list(events))
        if self.fail_when(events) or any(
                e.originator_version <= self.versions.get(e.originator_id, 0) for e in events):
            raise RuntimeError(f"conflict in {events}")
        self.versions.update((e.originator_id, e.originator_version) for e in events)
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
    second._pending = [FakeEvent("task-e0-again", "task", 2)]
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


def run_held(store, committer, first, queued):
    """Commit ``first`` while holding the store, queue ``queued`` behind it, then let go."""
    results: dict = {}
    threads = [submit(committer, first, results)]
    store.entered.wait(5)
    for aggregate in queued:
        threads.append(submit(committer, aggregate, results))
        wait_queued(committer, len(threads) - 1)  # queued in this order
    store.gate.set()
    for thread in threads:
        thread.join(5)
    committer.close()
    return results


def test_a_failed_batch_is_split_in_halves_down_to_the_command_at_fault():
    store = FakeStore(hold_first=True, fail_when=lambda events: "c5-e0" in events)
    committer = GroupCommitter(store.save, [])
    names = [f"c{i}" for i in range(8)]
    results = run_held(store, committer, FakeAggregate("a"),
                       [FakeAggregate(name) for name in names])
    assert isinstance(results.pop("c5"), RuntimeError)  # the error it has alone
    assert results == {"a": [1], "c0": [2], "c1": [3], "c2": [4], "c3": [5], "c4": [6],
                       "c6": [7], "c7": [8]}
    assert store.transactions == [["a-e0"], ["c0-e0", "c1-e0", "c2-e0", "c3-e0"], ["c4-e0"],
                                  ["c6-e0", "c7-e0"]]
    assert len(store.attempted) == 8  # one by one after the first failure: 10


def test_a_store_that_cannot_be_reached_fails_the_batch_at_once():
    """No command is at fault, and each further attempt would wait out the recorder's own
    retries again: the batch is not split."""
    store = FakeStore(hold_first=True)
    committer = GroupCommitter(store.save, [])
    down = OperationalError("connection refused")
    real_save = store.save

    def save(*events, after_insert=()):
        if len(store.attempted) >= 1:  # after the first transaction, the server goes away
            store.attempted.append(list(events))
            raise down
        return real_save(*events, after_insert=after_insert)

    committer._save = save
    results = run_held(store, committer, FakeAggregate("a"),
                       [FakeAggregate(name) for name in ("b", "c", "d", "e")])
    assert results.pop("a") == [1]
    assert results == {name: down for name in ("b", "c", "d", "e")}
    assert store.attempted == [["a-e0"], ["b-e0", "c-e0", "d-e0", "e-e0"]]


def test_a_command_behind_what_this_process_committed_is_committed_alone():
    """Two requests on one task, both loaded at version 0: the second is bound to conflict
    once the first has committed, so it does not share (and take down) a batch."""
    store = FakeStore()
    committer = GroupCommitter(store.save, [])
    done: dict = {}
    submit(committer, FakeAggregate("task"), done).join(5)
    store.gate.clear()
    store.entered.clear()
    late = FakeAggregate("task")
    late._pending = [FakeEvent("task-e0-late", "task", 1)]
    results = run_held(store, committer, FakeAggregate("a"),
                       [late, FakeAggregate("y"), FakeAggregate("z")])
    assert done == {"task": [1]}
    assert isinstance(results.pop("task"), RuntimeError)
    assert results == {"a": [2], "y": [3], "z": [4]}
    assert store.attempted == [["task-e0"], ["a-e0"], ["task-e0-late"], ["y-e0", "z-e0"]]


def test_saving_after_close_is_refused():
    committer = GroupCommitter(FakeStore().save, [])
    committer.close()
    with pytest.raises(RuntimeError, match="closed"):
        committer.save([FakeAggregate("a")], ())
