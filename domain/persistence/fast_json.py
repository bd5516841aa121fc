"""The library's JSON transcoding, the same bytes, written and read with orjson.

The library's ``JSONTranscoder`` encodes with the standard ``json`` module and calls back
into Python for every UUID, datetime, date and deadline; decoding calls back for every
object. On this project's events that was about two fifths of a bulk import's time
(benchmarks/README.md). ``FastJSONTranscoder`` prepares the event state in one pass
(tagging what the registered transcodings tag, as ``{"_type_": ..., "_data_": ...}``),
lets orjson write it, and reads with orjson, turning tagged objects back with the
library's own ``_decode_obj``.

The stored bytes are exactly the library's: the hash chain covers them, and a store
written by either transcoder is read by both (``tests/unit/test_fast_json.py`` compares
the bytes on generated values and on every event of a synthetic ledger). Whatever orjson
would write or read differently goes through the library's code instead: floats (the two
format exponents differently; orjson reads integers beyond 64 bits as floats), integers
beyond 64 bits, non-string keys, unregistered types, subclasses of dict, list or int,
and anything orjson refuses (NaN, invalid UTF-8...). Those paths keep the library's
results and errors.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder

from domain.persistence.transcodings import DateAsISO


class _Fallback(Exception):
    """A value the fast path does not write or read exactly as the library does."""


# Written by orjson as json writes them (orjson refuses ints beyond 64 bits with a
# TypeError, which sends the value down the library's path).
_LEAVES = frozenset({str, int, bool, type(None)})


def _plain(container: dict | list | tuple) -> bool:
    """Holds only leaves (dictionaries: under string keys). Loops, not ``all()`` over a
    generator: this runs for every container of every event written."""
    if type(container) is dict:
        for key, x in container.items():
            if type(key) is not str or type(x) not in _LEAVES:
                return False
        return True
    for x in container:
        if type(x) not in _LEAVES:
            return False
    return True


class FastJSONTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(self._prepare(obj))
        except (_Fallback, TypeError, ValueError, RecursionError):
            return super().encode(obj)  # the library's result, or its error

    def decode(self, data: bytes) -> Any:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        try:
            return self._restore(value)
        except _Fallback:
            return super().decode(data)

    # -- writing --------------------------------------------------------------------------

    def _prepare(self, v: Any) -> Any:
        """``v`` as orjson should write it: containers copied, tagged values tagged."""
        tp = type(v)
        if tp in _LEAVES:
            return v
        if tp is dict:
            out = {}
            for key, x in v.items():
                if type(key) is not str:
                    raise _Fallback  # json turns some keys into strings; orjson refuses
                tx = type(x)
                if tx in _LEAVES or ((tx is dict or tx is list or tx is tuple) and _plain(x)):
                    out[key] = x  # written as it is: no copy (fewer objects for the GC)
                else:
                    out[key] = self._prepare(x)
            return out
        if tp is list or tp is tuple:
            return v if _plain(v) else [self._prepare(x) for x in v]
        if isinstance(v, str):  # StrEnum and other str subclasses: json writes the text
            return str.__str__(v)
        return self._tagged(tp, v)

    def _tagged(self, tp: type, v: Any) -> dict[str, Any]:
        transcoding = self.types.get(tp)
        if transcoding is None:
            raise _Fallback  # not registered (or a float, a dict subclass...)
        kind = type(transcoding)
        # orjson writes UTC and naive datetimes, and dates, as isoformat() does (checked
        # by the tests down to the year 1); other time zones go through isoformat().
        if (kind is DatetimeAsISO and (v.tzinfo is None or v.tzinfo is UTC)) or \
                kind is DateAsISO:
            return {"_type_": transcoding.name, "_data_": v}
        return {"_type_": transcoding.name, "_data_": self._prepare(transcoding.encode(v))}

    # -- reading --------------------------------------------------------------------------

    def _restore(self, v: Any) -> Any:
        """Turn tagged objects back into values, innermost first, as the library's
        ``object_hook`` does."""
        tp = type(v)
        if tp is dict:
            for key, x in v.items():
                tx = type(x)
                if tx is dict or tx is list:
                    v[key] = self._restore(x)
                elif tx is float:
                    raise _Fallback
            return self._decode_obj(v) if len(v) == 2 else v
        if tp is list:
            for i, x in enumerate(v):
                tx = type(x)
                if tx is dict or tx is list:
                    v[i] = self._restore(x)
                elif tx is float:
                    raise _Fallback
            return v
        if tp is float:
            raise _Fallback
        return v
