"""STIX/TAXII timestamps.

The node keeps every timestamp as integer microseconds since the epoch: `date_added` values are compared
and incremented exactly, and version keys sort as text because they are rendered at a fixed width.
"""

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|\+00:00)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


class TimestampError(ValueError):
    """A text that is not an RFC 3339 UTC timestamp as STIX 2.1 §3.2 writes them."""


def parse_micros(text: str) -> int:
    """Parse a STIX timestamp (`2016-04-06T20:03:48.123Z`) into microseconds since the epoch.

    Digits beyond microseconds are truncated: for integer stored values `d`, `d > floor(t)` holds exactly
    when `d > t`, so `added_after` stays exact.
    """
    if not isinstance(text, str):
        raise TimestampError(f"'{text}' is not a UTC timestamp like 2016-04-06T20:03:48.123Z")
    return _parse_remembered(text) if len(text) <= _REMEMBERED_LENGTH else _parse_text(text)


def _parse_text(text: str) -> int:
    match = _TIMESTAMP.match(text)
    if not match:
        raise TimestampError(f"'{text}' is not a UTC timestamp like 2016-04-06T20:03:48.123Z")
    try:  # the pattern has checked the shape: the 19 characters up to the fraction are date and time
        delta = datetime.fromisoformat(text[:19]) - _NAIVE_EPOCH
    except ValueError as error:
        raise TimestampError(f"'{text}' is not a valid date and time: {error}") from None
    fraction = match.group(7)
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + micros


# Every object of an envelope is parsed two or three times (created and modified when it is screened, its
# version when it is stored), and created often equals modified: a repeat costs a lookup. Bounded in count
# and in length (nanoseconds are 30 characters), so an attacker's timestamps only evict each other.
_REMEMBERED_LENGTH = 40
_parse_remembered = lru_cache(maxsize=8192)(_parse_text)


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
