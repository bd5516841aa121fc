"""Building ledgers of random events, and an attacker who edits the store directly in SQL."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from hypothesis import strategies as st

from domain.agency import Agency, AgencyLevel
from domain.application import Ledger
from domain.errors import DomainError
from domain.ids import task_id
from domain.integrity import make_checkpoint
from domain.integrity.canonical import GENESIS, chain_hash
from domain.reference import AgencyRecord
from domain.specs import DirectiveSpec, TaskSpec
from tests.behaviour.helpers import OPERATOR, agency

DEADLINES = ("Năm 2022", "Quý IV năm 2021", "Thường xuyên", "chậm nhất ngày 30/8/2022",
             "Hằng năm", "Sau khi có hướng dẫn của Bộ, ngành TW")

operation = st.one_of(
    st.tuples(st.just("agency"), st.integers(0, 40)),
    st.tuples(st.just("directive"), st.integers(1, 6)),
    st.tuples(st.just("progress"), st.integers(0, 10_000)),
    st.tuples(st.just("head"), st.integers(0, 10_000)),
    st.tuples(st.just("checkpoint"), st.just(0)),
    st.tuples(st.just("conflict"), st.just(0)),
)
operations = st.lists(operation, min_size=1, max_size=12)


class LedgerBuilder:
    """Applies operations through the Ledger's commands; failed ones store nothing."""

    def __init__(self, ledger: Ledger, clock, key) -> None:
        self.ledger = ledger
        self.clock = clock
        self.key = key
        self.agencies = ["T-UB", "T-S0"]
        self.tasks: list[Any] = []
        self.directives = 0
        self.heads: dict[str, str] = {}
        ledger.register_agency(OPERATOR, AgencyRecord("T-UB", "Ủy ban nhân dân tỉnh thử",
                                                      AgencyLevel.PROVINCE))
        ledger.register_agency(OPERATOR, AgencyRecord("T-S0", "Sở Nội vụ thử",
                                                      AgencyLevel.PROVINCIAL))

    def apply(self, ops: Sequence[tuple[str, int]]) -> None:
        for kind, n in ops:
            self.clock.advance(hours=1 + n % 7)
            try:
                getattr(self, f"_{kind}")(n)
            except DomainError:
                pass  # refused by the ledger's rules: nothing stored, which is fine here

    def _agency(self, n: int) -> None:
        code = f"T-S{n + 1}"
        if code not in self.agencies:
            self.ledger.register_agency(OPERATOR, AgencyRecord(code, f"Sở thử số {n + 1}",
                                                               AgencyLevel.PROVINCIAL))
            self.agencies.append(code)

    def _directive(self, n: int) -> None:
        self.directives += 1
        number = f"{self.directives}/KH-UBND"
        leads = [self.agencies[(self.directives + i) % len(self.agencies)] for i in range(n)]
        spec = DirectiveSpec(
            number=number, issuer="T-UB", issued_on=date(2021, 8, 26),
            title=f"Kế hoạch thử nghiệm số {self.directives}",
            tasks=tuple(TaskSpec(ordinal=str(i + 1), content=f"Nhiệm vụ {i + 1} của {number}",
                                 lead=lead, deadline=DEADLINES[(self.directives + i) % 6])
                        for i, lead in enumerate(leads)),
        )
        receipt = self.ledger.issue_directive(OPERATOR, spec)
        self.tasks += [(task_id(receipt.entity_id, t.ordinal), t.lead) for t in spec.tasks]

    def _progress(self, n: int) -> None:
        if self.tasks:
            task, lead = self.tasks[n % len(self.tasks)]
            self.ledger.report_progress(agency(lead), task, summary=f"Đã thực hiện {n}%"[:60],
                                        percent=n % 101)

    def _head(self, n: int) -> None:
        code = self.agencies[n % len(self.agencies)]
        person = self.heads.pop(code, None)
        if person is not None:
            self.ledger.record_head_left(OPERATOR, code, person, date(2021, 9, 1))
        else:
            self.ledger.appoint_head(OPERATOR, code, f"Nguyễn Văn {n}", "Giám đốc",
                                     date(2020, 1, 1))
            self.heads[code] = f"Nguyễn Văn {n}"

    def _checkpoint(self, _: int) -> None:
        make_checkpoint(self.ledger, self.key)

    def _conflict(self, _: int) -> None:
        """A save that fails on the unique key (on PostgreSQL it uses up positions)."""
        duplicate = Agency.register(code="T-UB", name="trùng", level=AgencyLevel.PROVINCE,
                                    parent=None, aliases=[], established_on=None,
                                    member_levels=[], meta={}, timestamp=self.clock())
        try:
            self.ledger.save(duplicate)
        except Exception:
            return
        raise AssertionError("a duplicate registration was stored")


class Attacker:
    """Someone with write access to the database, changing rows behind the ledger's back."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.dialect = "sqlite"
            self.conn: Any = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            self.events, self.pos = "stored_events", "rowid"
            self.chain, self.checkpoints = "ledger_chain", "ledger_checkpoints"
        else:
            import psycopg

            self.dialect = "postgres"
            parts = urlsplit(url)
            schema = parse_qs(parts.query)["schema"][0]
            self.conn = psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True)
            self.events, self.pos = f'"{schema}".ledger_events', "notification_id"
            self.chain = f'"{schema}".ledger_chain'
            self.checkpoints = f'"{schema}".ledger_checkpoints'

    def close(self) -> None:
        self.conn.close()

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "sqlite":
            statement = statement.replace("%s", "?")
        cursor = self.conn.execute(statement, params)
        try:
            return [tuple(r) for r in cursor.fetchall()]
        except Exception:  # statements without results
            return []

    # -- reading -------------------------------------------------------------------------------

    def positions(self) -> list[int]:
        return [r[0] for r in self.sql(f"SELECT {self.pos} FROM {self.events} ORDER BY 1")]

    def row(self, position: int) -> tuple[Any, ...]:
        return self.sql(f"SELECT originator_id, originator_version, topic, state FROM "
                        f"{self.events} WHERE {self.pos} = %s", (position,))[0]

    def checkpoint_rows(self) -> list[tuple[Any, ...]]:
        return self.sql(f"SELECT number, position, head, signed_at, signature FROM "
                        f"{self.checkpoints} ORDER BY number")

    # -- tampering with events ---------------------------------------------------------------

    def rewrite(self, position: int, change: Callable[[bytes], bytes]) -> None:
        """Replace the stored event's state by ``change`` of it."""
        state = bytes(self.row(position)[3])
        self.sql(f"UPDATE {self.events} SET state = %s WHERE {self.pos} = %s",
                 (change(state), position))

    def edit_byte(self, position: int, index: int, xor: int) -> None:
        def flip(state: bytes) -> bytes:
            edited = bytearray(state)
            edited[index % len(edited)] ^= xor
            return bytes(edited)

        self.rewrite(position, flip)

    def delete(self, position: int) -> None:
        self.sql(f"DELETE FROM {self.events} WHERE {self.pos} = %s", (position,))

    def insert_forged(self, position: int, template: int) -> None:
        """A new event (fresh identity) carrying another row's topic and state."""
        _, _, topic, state = self.row(template)
        forged = uuid.uuid4()
        oid: Any = forged.hex if self.dialect == "sqlite" else forged
        self.sql(f"INSERT INTO {self.events} (originator_id, originator_version, topic, state, "
                 f"{self.pos}) VALUES (%s, %s, %s, %s, %s)", (oid, 1, topic, state, position))

    def swap(self, a: int, b: int) -> None:
        spare = -7
        for old, new in ((a, spare), (b, a), (spare, b)):
            self.sql(f"UPDATE {self.events} SET {self.pos} = %s WHERE {self.pos} = %s",
                     (new, old))

    # -- tampering with the chain and the checkpoints ----------------------------------------

    def alter_checkpoint(self, number: int, field: str, rng: random.Random) -> int:
        """Change one field of a checkpoint; returns the position it now claims."""
        _, position, head, signed_at, signature = next(
            r for r in self.checkpoint_rows() if r[0] == number)
        if field == "head":
            value: Any = bytes(b ^ (0x01 if i == rng.randrange(32) else 0)
                               for i, b in enumerate(bytes(head)))
            if value == bytes(head):
                value = bytes([head[0] ^ 0xFF]) + bytes(head)[1:]
        elif field == "signed_at":
            value = signed_at[:-1] + ("1" if signed_at[-1] != "1" else "2")
        elif field == "signature":
            raw = bytearray(signature)
            raw[rng.randrange(len(raw))] ^= 0x80
            value = bytes(raw)
        else:
            value = max(0, position + rng.choice([-2, -1, 1, 2]))
            if value == position:
                value = position + 1
        self.sql(f"UPDATE {self.checkpoints} SET {field} = %s WHERE number = %s", (value, number))
        return value if field == "position" else position

    def delete_checkpoint(self, number: int) -> None:
        self.sql(f"DELETE FROM {self.checkpoints} WHERE number = %s", (number,))

    def set_chain_hash(self, position: int, value: bytes) -> None:
        self.sql(f"UPDATE {self.chain} SET hash = %s WHERE position = %s", (value, position))

    def delete_chain_entry(self, position: int) -> None:
        self.sql(f"DELETE FROM {self.chain} WHERE position = %s", (position,))

    def rewrite_chain_from(self, position: int) -> None:
        """Recompute the chain table over the (altered) events from ``position`` on, as an
        attacker who knows the format would — only signed checkpoints can catch this."""
        before = self.sql(f"SELECT hash FROM {self.chain} WHERE position < %s "
                          "ORDER BY position DESC LIMIT 1", (position,))
        previous = bytes(before[0][0]) if before else GENESIS
        rows = self.sql(f"SELECT {self.pos}, originator_id, originator_version, topic, state "
                        f"FROM {self.events} WHERE {self.pos} >= %s ORDER BY 1", (position,))
        for pos, oid, version, topic, state in rows:
            oid = oid.hex if isinstance(oid, uuid.UUID) else oid
            previous = chain_hash(previous, pos, oid, version, topic, bytes(state))
            self.sql(f"UPDATE {self.chain} SET hash = %s WHERE position = %s", (previous, pos))

    def truncate_from(self, position: int) -> None:
        self.sql(f"DELETE FROM {self.events} WHERE {self.pos} >= %s", (position,))
        self.sql(f"DELETE FROM {self.chain} WHERE position >= %s", (position,))
