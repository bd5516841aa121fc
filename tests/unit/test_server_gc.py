"""A server process makes Python's full garbage collections rare while it serves, and puts
the collector back as it was when it stops."""

from __future__ import annotations

import gc

from service.app import FULL_COLLECTION_AFTER, rarer_full_collections


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
