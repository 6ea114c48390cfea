"""Hourly and daily event counts per family and university (Asia/Shanghai calendar)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from events.base import Event
from streams.contributions import Contributions, dimkey

CST = timezone(timedelta(hours=8), "Asia/Shanghai")


def window_counts(event: Event) -> Contributions:
    hour, day = _window_keys(event.family, event.source, int(event.occurred_at.timestamp()) // 3600)
    return {("windows", hour): {"events": 1}, ("windows", day): {"events": 1}}


@lru_cache(maxsize=4096)  # (family, university, hour): a few hundred a day
def _window_keys(family: str, university: str, epoch_hour: int) -> tuple[str, str]:
    local = datetime.fromtimestamp(epoch_hour * 3600, CST)
    base = {"family": family, "university": university}
    return (dimkey(base | {"granularity": "hour", "bucket": local.strftime("%Y-%m-%dT%H")}),
            dimkey(base | {"granularity": "day", "bucket": local.strftime("%Y-%m-%d")}))


def month_of(iso: str) -> str:
    """The Asia/Shanghai calendar month (YYYY-MM) of an ISO 8601 time."""
    return datetime.fromisoformat(iso).astimezone(CST).strftime("%Y-%m")
