"""Group commit: the saves of concurrent commands in one transaction.

Every save into the events table takes an exclusive lock on it (that is what keeps positions
gap-free for readers), so writers queue one transaction at a time and the transaction, not
the CPU, bounds throughput. Here request threads hand their events to one committer thread
and wait; the committer takes everything queued and saves it in a single transaction.

Semantics stay those of saving one command at a time:
* two commands touching the same aggregate never share a batch: the later one waits for the
  next batch, so the store (not this module) decides whether it conflicts;
* each command's own hooks see only its own positions;
* if the batch fails (a conflict with another process, say), it is split in halves and each
  half committed, down to the command at fault, which fails alone with the error it would
  have had alone (a conflict in a batch of 32 costs ~10 transactions, not 32); a store that
  cannot be reached (after the recorder's own retries) fails the whole batch at once, since
  no command is at fault and every further attempt would wait as long;
* a command written against a version this process has itself committed past (two requests
  on one task, both loaded before the first committed) is bound to conflict: it is committed
  alone, so it fails without taking a batch down with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, Recording

Hook = Callable[[Any, Sequence[int]], None]

# Aggregates whose last committed version this process remembers (to spot doomed commands).
_REMEMBERED = 10_000


@dataclass
class _Submission:
    events: list[Any]
    hooks: list[Hook]
    aggregate_ids: set[Any]
    done: threading.Event = field(default_factory=threading.Event)
    recordings: list[Recording] | None = None
    error: BaseException | None = None


class GroupCommitter:
    def __init__(self, save: Callable[..., list[Recording]], global_hooks: list[Hook],
                 max_batch: int = 256) -> None:
        self._save = save  # Application.save
        self._global_hooks = global_hooks  # run once per transaction (e.g. the hash chain)
        self._max_batch = max_batch
        self._queue: deque[_Submission] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit",
                                        daemon=True)
        self._thread.start()
        self.batches = 0  # for tests and metrics
        self.largest_batch = 0
        # aggregate id -> the last version this process committed (committer thread only)
        self._committed: OrderedDict[Any, int] = OrderedDict()

    def save(self, aggregates: Sequence[Any], hooks: Sequence[Hook]) -> list[Recording]:
        """Save the aggregates' pending events (with ``hooks`` run inside the transaction,
        given this command's positions only); blocks until committed or failed."""
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        submission = _Submission(events, list(hooks), {a.id for a in aggregates})
        with self._cond:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            self._queue.append(submission)
            self._cond.notify()
        submission.done.wait()
        if submission.error is not None:
            raise submission.error
        assert submission.recordings is not None
        return submission.recordings

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- the committer thread -------------------------------------------------------------------

    def _take_batch(self) -> list[_Submission]:
        batch: list[_Submission] = []
        touched: set[Any] = set()
        deferred: list[_Submission] = []
        while self._queue and len(batch) < self._max_batch:
            submission = self._queue.popleft()
            if submission.aggregate_ids & touched:
                deferred.append(submission)  # same aggregate as an earlier one: next batch
                continue
            touched |= submission.aggregate_ids
            batch.append(submission)
        self._queue.extendleft(reversed(deferred))
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                batch = self._take_batch()
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                together: list[_Submission] = []
                for submission in batch:
                    if self._behind(submission):
                        self._commit_alone(submission)  # bound to conflict: fails alone
                    else:
                        together.append(submission)
                if together:
                    self._commit(together)
            except BaseException as exc:
                for submission in batch:
                    if not submission.done.is_set():
                        submission.error = exc
                        submission.done.set()

    def _commit(self, batch: list[_Submission]) -> None:
        if len(batch) == 1:
            self._commit_alone(batch[0])
            return
        hooks: list[Hook] = list(self._global_hooks)
        start = 0
        for submission in batch:
            end = start + len(submission.events)
            for hook in submission.hooks:
                hooks.append(_slice(hook, start, end))
            start = end
        try:
            recordings = self._save(*[e for s in batch for e in s.events], after_insert=hooks)
        except (InterfaceError, OperationalError):
            raise  # the store is down: every command of the batch gets this error (_run)
        except Exception:
            half = len(batch) // 2
            self._commit(batch[:half])
            self._commit(batch[half:])
            return
        self._remember(batch)
        start = 0
        for submission in batch:
            end = start + len(submission.events)
            submission.recordings = recordings[start:end]
            start = end
            submission.done.set()

    def _commit_alone(self, submission: _Submission) -> None:
        try:
            submission.recordings = self._save(
                *submission.events, after_insert=[*self._global_hooks, *submission.hooks])
            self._remember([submission])
        except BaseException as exc:
            submission.error = exc
        submission.done.set()

    def _behind(self, submission: _Submission) -> bool:
        """Does it write a version of an aggregate that this process already committed?"""
        committed = self._committed
        return any(event.originator_version <= committed.get(event.originator_id, -1)
                   for event in submission.events)

    def _remember(self, batch: Sequence[_Submission]) -> None:
        committed = self._committed
        for submission in batch:
            for event in submission.events:
                committed[event.originator_id] = event.originator_version
                committed.move_to_end(event.originator_id)
        while len(committed) > _REMEMBERED:
            committed.popitem(last=False)


def _slice(hook: Hook, start: int, end: int) -> Hook:
    def sliced(tx: Any, positions: Sequence[int]) -> None:
        hook(tx, positions[start:end])

    return sliced
