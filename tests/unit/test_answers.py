"""Cached answers: which clients get them gzipped, and which answers are worth compressing
(no I/O; the API side is in tests/api/test_read_models_e2e.py)."""

from __future__ import annotations

import pytest

from service.read_models import Answer, accepts_gzip


@pytest.mark.parametrize(("header", "gzip"), [
    ("gzip", True), ("GZip", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True),
    ("*", True), ("br;q=1, *;q=0.1", True), ("gzip;q=0", False), ("*, gzip;q=0", False),
    ("*;q=0", False), ("identity", False), ("br, deflate", False), ("", False), (None, False),
    ("gzip;q=nonsense", False),
])
def test_accept_encoding_admits_gzip_by_name_or_star_with_a_weight_above_zero(header, gzip):
    assert accepts_gzip(header) is gzip


def test_small_answers_are_not_compressed():
    assert Answer.of(b'{"ok":true}').gzipped is None
    big = Answer.of(b'{"rows":[' + b",".join([b'"Quy\xe1\xba\xbft \xc4\x91\xe1\xbb\x8bnh"'] * 200)
                    + b"]}")
    assert big.gzipped is not None and len(big.gzipped) < len(big.body) / 10
