"""A deterministic ZIP writer (stored, uncompressed members, fixed dates and attributes).

Bundles are written with it so that the verifier can rebuild the exact archive bytes from
the member contents and compare: then *every* byte of a bundle matters, including the ZIP
headers that ordinary readers ignore (dates, attributes). Any ZIP tool can read the result.
Members and the archive stay below 4 GiB (no ZIP64), which a province's ledger does not
approach.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO, Protocol

_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_DOS_TIME = 0
_VERSION = 20
_MADE_BY = (3 << 8) | _VERSION  # Unix
_EXTERNAL_ATTR = 0o100644 << 16
_LIMIT = 0xFFFFFFFF


class Sink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class ArchiveTooLarge(ValueError):
    pass


class StoredZipWriter:
    """Write members one after another; call ``close()`` to write the central directory."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.offset = 0
        self.entries: list[tuple[bytes, int, int, int]] = []  # name, crc, size, offset

    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self.offset += len(data)

    def add(self, name: str, size: int, crc: int, chunks: Iterable[bytes]) -> None:
        """One member whose size and CRC-32 are known before its bytes are written."""
        raw_name = name.encode("ascii")
        if size > _LIMIT or self.offset > _LIMIT:
            raise ArchiveTooLarge(f"{name}: the bundle would exceed 4 GiB")
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, 0, 0, _DOS_TIME, _DOS_DATE,
                             crc, size, size, len(raw_name), 0)
        self.entries.append((raw_name, crc, size, self.offset))
        self._write(header + raw_name)
        written = 0
        for chunk in chunks:
            written += len(chunk)
            self._write(chunk)
        if written != size:
            raise ValueError(f"{name}: {written} bytes written, {size} announced")

    def close(self) -> None:
        start = self.offset
        for raw_name, crc, size, offset in self.entries:
            self._write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, _MADE_BY, _VERSION, 0, 0,
                                    _DOS_TIME, _DOS_DATE, crc, size, size, len(raw_name), 0, 0,
                                    0, 0, _EXTERNAL_ATTR, offset) + raw_name)
        if self.offset > _LIMIT:
            raise ArchiveTooLarge("the bundle would exceed 4 GiB")
        count = len(self.entries)
        self._write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count,
                                self.offset - start, start, 0))


def file_chunks(handle: BinaryIO, size: int = 1 << 20) -> Iterable[bytes]:
    while True:
        chunk = handle.read(size)
        if not chunk:
            return
        yield chunk


def crc_and_size(handle: BinaryIO) -> tuple[int, int]:
    """CRC-32 and length of a file's contents (read from the start, rewound after)."""
    handle.seek(0)
    crc, size = 0, 0
    for chunk in file_chunks(handle):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    handle.seek(0)
    return crc, size
