"""The order of a directive's tasks by ordinal (domain/specs.py, pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from domain.specs import ordinal_key


def test_numbers_order_by_value_and_before_words():
    ordinals = ["a", "1.10", "II.1", "2", "1.2", "1", "b)", "1.a", "²"]
    assert sorted(ordinals, key=ordinal_key) == [
        "1", "1.2", "1.10", "1.a", "2", "II.1", "a", "b)", "²"]


@given(st.lists(st.text(alphabet="0123456789.#aIvV)² ", max_size=8), max_size=20))
def test_any_ordinals_can_be_put_in_order(ordinals):
    ordered = sorted(ordinals, key=ordinal_key)
    keys = [ordinal_key(o) for o in ordered]
    assert all(a <= b for a, b in itertools.pairwise(keys))


@given(st.lists(st.lists(st.integers(0, 300), min_size=1, max_size=3), max_size=20))
def test_dotted_numbers_order_as_their_numbers_do(numbers):
    ordinals = [".".join(map(str, parts)) for parts in numbers]
    assert [list(map(int, o.split("."))) for o in sorted(ordinals, key=ordinal_key)] == sorted(
        numbers)
