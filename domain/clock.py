"""Time as people in the province mean it.

The ledger clock (``recorded_at``) is UTC. Dates that people state (a due date, the date of
a report) are calendar dates in Asia/Ho_Chi_Minh, and a due date ends at 24:00 of its day
(Bộ luật Dân sự 2015, Art. 146-148): a request recorded at 23:59 local time on the due
date is still on time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# The calendar the ledger accepts for dates people state (issue, due, report, office...),
# the same years as deadline phrases and document numbers (1945-2100). Anything outside is
# a typing error ("0001-01-01", "9999-12-31"), not a fact; refusing it also keeps every
# date arithmetic (end of day, periods, days overdue) far from overflow.
EARLIEST_DAY = date(1945, 1, 1)
LATEST_DAY = date(2100, 12, 31)

Clock = Callable[[], datetime]


def plausible_day_problem(day: date) -> str | None:
    """Why ``day`` cannot be a date someone meant, or None."""
    if EARLIEST_DAY <= day <= LATEST_DAY:
        return None
    return (f"{day.isoformat()} is outside the dates the ledger accepts "
            f"({EARLIEST_DAY:%d/%m/%Y} to {LATEST_DAY:%d/%m/%Y})")


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in Vietnam at a recorded moment."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(LOCAL_TZ).date()


def end_of_day(day: date) -> datetime:
    """The instant a due date expires: 24:00 local time, i.e. the next day's 00:00."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=LOCAL_TZ)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=LOCAL_TZ)


def format_date_vn(day: date | None) -> str:
    """dd/mm/yyyy, as dates are written to people."""
    return "" if day is None else day.strftime("%d/%m/%Y")


def format_datetime_vn(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(LOCAL_TZ).strftime("%d/%m/%Y %H:%M")


def parse_date(text: str) -> date:
    """Accept ISO 8601 (2024-05-31) or Vietnamese dd/mm/yyyy (31/5/2024)."""
    text = text.strip()
    try:
        if "/" in text:
            day, month, year = (int(part) for part in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a date: {text!r} (expected dd/mm/yyyy or yyyy-mm-dd)") from exc


def parse_moment(text: str) -> datetime:
    """A point on the ledger clock: ISO 8601 with offset, or a date meaning its end in Vietnam.

    "31/5/2024" as an as-of moment means "at the end of 31/5/2024, Vietnam time".
    """
    text = text.strip()
    if "T" in text or " " in text:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not a moment: {text!r} (expected ISO 8601)") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=LOCAL_TZ)
        return moment.astimezone(UTC)
    return end_of_day(parse_date(text)).astimezone(UTC)
