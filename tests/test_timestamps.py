"""STIX timestamps as the node reads them (STIX 2.1 §3.2: RFC 3339 in UTC, a fraction of any length): every
version key, added_after and date_added goes through this."""

import random
from datetime import UTC, datetime

import pytest

from taxii_federation.server.timestamps import TimestampError, format_micros, parse_micros

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _calendar_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def test_timestamps_read_as_the_calendar_says_from_year_1_to_9999():
    rng = random.Random(7)
    for _ in range(20_000):
        moment = (
            datetime(1, 1, 1, tzinfo=UTC)
            + (datetime(9999, 12, 31, tzinfo=UTC) - datetime(1, 1, 1, tzinfo=UTC)) * rng.random()
        )
        digits = rng.choice([0, 1, 3, 6])
        fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
        text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}{rng.choice(['Z', 'z', '+00:00'])}"
        kept = int((f"{moment.microsecond:06d}"[:digits] + "000000")[:6])
        assert parse_micros(text) == _calendar_micros(moment.replace(microsecond=kept)), text


def test_a_timestamp_read_twice_and_written_back_is_the_same_instant():
    for text in ["2016-04-06T20:03:48.123Z", "2024-02-29T23:59:59.999999Z", "1970-01-01T00:00:00Z"]:
        assert parse_micros(text) == parse_micros(text) == parse_micros(format_micros(parse_micros(text)))


def test_digits_beyond_microseconds_are_truncated_not_rounded():
    assert parse_micros("2016-04-06T20:03:48.1234569Z") == parse_micros("2016-04-06T20:03:48.123456Z")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2023-02-29T00:00:00Z", "day is out of range for month"),
        ("2016-13-01T00:00:00Z", "month must be in 1..12"),
        ("0000-01-01T00:00:00Z", "year 0 is out of range"),
        ("2016-04-06T24:00:00Z", "hour must be in 0..23"),
        ("2016-04-06T23:60:00Z", "minute must be in 0..59"),
        ("2016-04-06T23:59:60Z", "second must be in 0..59"),
        ("2016-04-06T20:03:48+02:00", "is not a UTC timestamp"),
        ("2016-04-06 20:03:48Z", "is not a UTC timestamp"),
        ("2016-04-06T20:03:48", "is not a UTC timestamp"),
    ],
)
def test_an_impossible_or_non_utc_timestamp_is_refused_with_the_reason(text, reason):
    for _ in range(2):  # a refusal is not remembered as a value
        with pytest.raises(TimestampError, match=reason):
            parse_micros(text)


def test_a_value_that_is_not_text_is_refused_as_a_timestamp():
    for value in [None, 1459973028, ["2016-04-06T20:03:48Z"], {"t": 1}]:
        with pytest.raises(TimestampError):
            parse_micros(value)
