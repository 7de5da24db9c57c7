"""STIX/TAXII timestamps.

The node keeps every timestamp as integer microseconds since the epoch: `date_added` values are compared
and incremented exactly, and version keys sort as text because they are rendered at a fixed width.
"""

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimestampError(ValueError):
    """A text that is not an RFC 3339 UTC timestamp as STIX 2.1 §3.2 writes them."""


def parse_micros(text: str) -> int:
    """Parse a STIX timestamp (`2016-04-06T20:03:48.123Z`) into microseconds since the epoch.

    Digits beyond microseconds are truncated: for integer stored values `d`, `d > floor(t)` holds exactly
    when `d > t`, so `added_after` stays exact.
    """
    match = _TIMESTAMP.match(text) if isinstance(text, str) else None
    if not match:
        raise TimestampError(f"'{text}' is not a UTC timestamp like 2016-04-06T20:03:48.123Z")
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as error:
        raise TimestampError(f"'{text}' is not a valid date and time: {error}") from None
    micros = int(((fraction or "") + "000000")[:6])
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + micros


def format_micros(micros: int) -> str:
    """Render microseconds since the epoch at fixed width, so that text order equals time order."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_format_seconds(seconds)}.{fraction:06d}Z"


@lru_cache(maxsize=65_536)
def _format_seconds(seconds: int) -> str:
    # A manifest page renders two timestamps per entry, mostly within a few seconds of each other: the
    # date arithmetic, once per second rather than per timestamp, was half of a manifest request.
    return f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"


def now_micros() -> int:
    delta = datetime.now(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
