"""A server process, and every command, makes Python's full garbage collections rare while it
runs, and puts the collector back as it was when it stops."""

from __future__ import annotations

import gc

from service.collector import FULL_COLLECTION_AFTER, rarer_full_collections


def test_full_collections_are_rarer_while_serving_and_as_before_after():
    before = gc.get_threshold()
    with rarer_full_collections():
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_AFTER)
        assert gc.isenabled()  # young collections still run by themselves
    assert gc.get_threshold() == before


def test_an_app_given_its_ledger_leaves_the_collector_alone():
    before = gc.get_threshold()
    with rarer_full_collections(enabled=False):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before


def test_every_command_runs_with_rarer_full_collections(monkeypatch):
    """A replay holds every aggregate of the ledger: the command line runs as a server does."""
    import cli.main

    seen = []
    monkeypatch.setattr(cli.main, "run_guarded", lambda app: seen.append(gc.get_threshold()))
    before = gc.get_threshold()
    cli.main.main()
    assert seen == [(before[0], before[1], FULL_COLLECTION_AFTER)]
    assert gc.get_threshold() == before
