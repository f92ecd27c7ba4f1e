"""Go-style durations ("90s", "1h30m"), the format the API server's CEL `duration()` accepts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
# Kept identical to the pattern in the CRDs so the API server and we agree on validity.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"


def parse_duration(text: str) -> timedelta:
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use Go syntax such as 30s, 15m, 24h or 1h30m")
    if text == "0":
        return timedelta(0)
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def parse_time(text: str) -> datetime:
    """RFC 3339 timestamps as the API server stores them (always timezone-aware)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
