"""Reference lists of agencies (codes, names, levels, aliases) and the name resolver.

Documents name agencies in many ways: "Sở Thông tin và TT", "Các sở: Tư pháp, Tài nguyên
và MT", "UBND cấp huyện, cấp xã". The resolver matches the longest known name at each point
of a cell, so names that contain "và" ("Sở Kế hoạch và Đầu tư") are never split, and an
unknown fragment is reported as such rather than dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources

from domain.agency import AgencyLevel
from domain.errors import UnknownAgency, ValidationError
from domain.text import fold

PROVINCES = {"quang-ngai": "quang-ngai.json", "lang-son": "lang-son.json"}


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    code: str
    name: str
    level: AgencyLevel
    parent: str | None = None
    aliases: tuple[str, ...] = ()
    member_levels: tuple[AgencyLevel, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferenceList:
    province: str
    issuer: str
    assigning_office: str
    agencies: tuple[AgencyRecord, ...]

    def by_code(self) -> dict[str, AgencyRecord]:
        return {a.code: a for a in self.agencies}


def load_reference(province: str = "quang-ngai") -> ReferenceList:
    try:
        filename = PROVINCES[province]
    except KeyError:
        raise ValidationError(
            f"no reference list for province {province!r} (known: {', '.join(PROVINCES)})",
            field="province",
        ) from None
    raw = json.loads(resources.files(__package__).joinpath(filename).read_text("utf-8"))
    return ReferenceList(
        province=raw["province"],
        issuer=raw["issuer"],
        assigning_office=raw["assigning_office"],
        agencies=tuple(
            AgencyRecord(
                code=a["code"],
                name=a["name"],
                level=AgencyLevel(a["level"]),
                parent=a.get("parent"),
                aliases=tuple(a.get("aliases", ())),
                member_levels=tuple(AgencyLevel(m) for m in a.get("member_levels", ())),
            )
            for a in raw["agencies"]
        ),
    )


_SEPARATORS = re.compile(r"^(?:\s|,|;|\.|và\b|cùng\b|với\b)+")
_SO_LIST = re.compile(r"^các sở:\s*(.+)$")


@dataclass
class NameResolver:
    """Maps agency names as written in documents to agency codes."""

    names: dict[str, str] = field(default_factory=dict)  # folded name -> code

    @classmethod
    def from_records(cls, records) -> NameResolver:
        resolver = cls()
        for record in records:
            resolver.add(record.code, record.name, *record.aliases)
        return resolver

    def add(self, code: str, *names: str) -> None:
        for name in names:
            key = fold(name)
            if key:
                self.names.setdefault(key, code)
        self.names.setdefault(fold(code), code)

    def _longest_prefix(self, text: str) -> tuple[str, str] | None:
        best: tuple[str, str] | None = None
        for name, code in self.names.items():
            if text.startswith(name) and (best is None or len(name) > len(best[0])):
                rest = text[len(name) :]
                if rest and rest[0].isalnum():
                    continue  # "sở tư pháp" must not match inside "sở tư phápxyz"
                best = (name, code)
        return best

    def resolve_one(self, text: str, *, field_name: str = "agency") -> str:
        codes = self.resolve_list(text, field_name=field_name)
        if len(codes) != 1:
            raise ValidationError(f"{field_name}: expected one agency, found {len(codes)}",
                                  field=field_name)
        return codes[0]

    def resolve_list(self, text: str, *, field_name: str = "agency") -> list[str]:
        """All agencies named in a cell, in order, without duplicates."""
        codes: list[str] = []
        for segment in fold(text).split(";"):
            segment = segment.strip()
            if not segment:
                continue
            listed = _SO_LIST.match(segment)
            if listed:
                # "Các sở: Tư pháp, Tài nguyên và MT" names several departments at once.
                head, _, tail = listed.group(1).partition(" và các ")
                parts = [f"sở {p.strip()}" for p in head.split(",") if p.strip()]
                if tail:
                    parts.append(f"các {tail}")
                for part in parts:
                    codes.extend(self._scan(part, text, field_name))
            else:
                codes.extend(self._scan(segment, text, field_name))
        if not codes:
            raise ValidationError(f"{field_name}: names no agency", field=field_name)
        return list(dict.fromkeys(codes))

    def _scan(self, segment: str, original: str, field_name: str) -> list[str]:
        codes = []
        pos = 0
        while pos < len(segment):
            skip = _SEPARATORS.match(segment[pos:])
            if skip:
                pos += skip.end()
                continue
            found = self._longest_prefix(segment[pos:])
            if found is None:
                fragment = re.split(r"[,;]| và ", segment[pos:])[0].strip()
                raise UnknownAgency(
                    f"{field_name}: unknown agency {fragment!r} in {original!r}",
                    field=field_name,
                )
            name, code = found
            codes.append(code)
            pos += len(name)
        return codes
