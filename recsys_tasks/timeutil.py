"""Time in one place: every instant is timezone-aware UTC, every stored timestamp one sortable text.

PostgreSQL stores ``timestamptz``/``date``; SQLite has neither, so this project stores them there
as text that sorts in time order (``2026-01-31 12:00:00.000000+00:00``, ``2026-01-31``). Values
read back may be either form; :func:`as_date` and :func:`utc` accept both.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

#: How timestamps are stored as text (SQLite, and bound parameters of portable statements).
TS_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S.%f+00:00"


def utc(value: datetime | date | str) -> datetime:
    """``value`` as an aware UTC datetime; naive values and bare dates are taken as UTC."""
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date or timestamp (YYYY-MM-DD[ HH:MM:SS[+00:00]])") from None
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    # A plain datetime, whatever came in: Airflow hands pendulum DateTimes, whose comparisons with
    # pandas' tz-aware values fail ("can't compare offset-naive and offset-aware datetimes").
    return datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
        tzinfo=timezone.utc,
    )


def utc_or_none(value: Any) -> datetime | None:
    """:func:`utc` of ``value``, or ``None`` for ``None`` and the empty string."""
    return None if value is None or value == "" else utc(value)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def as_date(value: date | datetime | str) -> date:
    """The calendar date of a ``date``, a UTC ``datetime`` or stored ISO text."""
    if isinstance(value, datetime):
        return utc(value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def iso(value: datetime | date) -> str:
    """A timestamp (as UTC, in :data:`TS_TEXT_FORMAT`) or a date (``YYYY-MM-DD``) as stored text."""
    if isinstance(value, datetime):
        return utc(value).strftime(TS_TEXT_FORMAT)
    return value.isoformat()


def iso_or_none(value: Any) -> str | None:
    """Text of a value read back from either dialect, for JSON: ISO for dates and times, else ``str``."""
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def now() -> datetime:
    """The current instant, aware UTC."""
    return datetime.now(timezone.utc)


def now_iso() -> str:
    """The current instant as stored text."""
    return iso(now())


def iso_column(col: Any) -> Any:
    """A pandas column of timestamps as an object array of stored text (naive taken as UTC); NaT -> None."""
    import numpy as np
    import pandas as pd

    values = pd.to_datetime(col, utc=True).to_numpy(dtype="datetime64[us]")  # UTC wall time
    text = np.datetime_as_string(values, unit="us").astype(str)
    out = np.char.add(np.char.replace(text, "T", " "), "+00:00").astype(object)
    out[np.isnat(values)] = None
    return out
