"""The versioned rulebook: every tunable reading of the regulations in one place.

The governing texts on extensions and on heads' responsibility (Quyết định 01/2024/QĐ-UBND
of Quảng Ngãi) have not been transcribed into this repository, so several rules are our
provisional reading. Each read model names the rulebook version it was computed with, so a
later correction is visible as a version change rather than a silent rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rulebook:
    version: str
    provisional: bool
    # "trước ngày D": True reads it as due on D (the day itself still counts), False as D-1.
    before_date_is_due_on_date: bool
    # NĐ 90/2020 style advisory threshold: share of fallen-due tasks done on time.
    on_time_threshold: float
    # A request recorded on the due date itself (before 24:00 local) is timely.
    extension_request_on_due_date_is_timely: bool
    note: str

    def describe(self) -> str:
        status = "provisional" if self.provisional else "final"
        return f"rulebook {self.version} ({status})"


RULEBOOK = Rulebook(
    version="2024.1",
    provisional=True,
    before_date_is_due_on_date=True,
    on_time_threshold=0.80,
    extension_request_on_due_date_is_timely=True,
    note=(
        "Tạm thời: các điều của Quyết định 01/2024/QĐ-UBND (Quảng Ngãi) và quy định về gia hạn "
        "chưa được chép lại; ngưỡng 80% theo tinh thần NĐ 90/2020/NĐ-CP chỉ để tham khảo, "
        "không phải xếp loại pháp lý. / Provisional until the regulation's articles are "
        "transcribed; the 80% threshold is advice, never a legal rating."
    ),
)
