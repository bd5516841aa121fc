"""Python's automatic garbage collection paused while a long read query runs.

A query that judges an agency's obligations builds tens of thousands of short-lived dicts
and tuples; reference counting frees them all, but their allocation alone triggers young
collections, which walk the query's live rows again and again (on a 1M-event store about
1,000 young and 90 middle collections a big agency's answer, 8-9% of its time; a page of
500 as of a past moment 74-79 against 85-97 ms with collection off). Nothing in a query
makes reference cycles worth collecting on the spot.

The collector is process-wide and a server runs queries on several threads, so the pause
is counted: the first query to start pauses it, the last to finish resumes it. Under a
stream of overlapping queries it would never resume, so it resumes after ``MAX_PAUSE``
seconds at the latest (the next query to finish) and stays on until no query runs. A
collector someone else disabled is left as it is.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

MAX_PAUSE = 1.0  # seconds

_lock = threading.Lock()
_running = 0  # queries inside ``collection_paused``
_paused_at: float | None = None  # when we paused it (None: not paused by us)


@contextmanager
def collection_paused(clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    global _running, _paused_at
    with _lock:
        if _running == 0 and gc.isenabled():
            gc.disable()
            _paused_at = clock()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _paused_at is not None and (_running == 0 or clock() - _paused_at > MAX_PAUSE):
                gc.enable()
                _paused_at = None
