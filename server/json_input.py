"""JSON from the network, read as an attacker may write it.

Python's json module accepts what RFC 8259 does not (NaN, Infinity), turns 1e400 into infinity, nests as
deep as the stack allows and keeps lone UTF-16 surrogates ("\\ud800") in strings that cannot be encoded
again. Any of those, stored, would later break a SOC client or the node itself. Here numbers outside JSON
become markers instead of values, and `problem_in` finds markers, lone surrogates and excessive nesting in
one pass over an object, so that one bad object is refused on its own and its neighbours are stored.
Most envelopes hold none of that, and msgspec, which refuses all of it, reads them first (`loads_screened`).
"""

import json
import math
import re

import msgspec

# STIX objects nest a few levels (extensions -> properties -> lists of objects); 64 leaves room for any
# real object and stays far below the interpreter's recursion limit, which stix2 and json.dumps need.
MAX_OBJECT_DEPTH = 64


class JsonInputError(ValueError):
    """A body that is not JSON at all: the whole request is refused."""


class NotJsonNumber:
    """A number the JSON text held that RFC 8259 §6 does not allow or no float can represent."""

    def __init__(self, text: str):
        self.text = text


_MSGSPEC_JSON = msgspec.json.Decoder()
# An escape that may write half of a UTF-16 surrogate pair into a string (a false alarm on an escaped
# backslash followed by 'ud8..' only costs the full check).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads_screened(body: bytes | str) -> tuple[object, bool]:
    """Parse JSON text; numbers outside JSON become `NotJsonNumber` markers for `problem_in` to report.
    Bytes must be UTF-8 (RFC 8259 §8.1; json.loads alone would also guess UTF-16 and UTF-32); a leading
    byte order mark is ignored. Also says whether the text was clean: it held no number outside JSON and no
    string that may hold a lone surrogate, so of what `problem_in` looks for only the nesting is left to
    check (`problem_in(value, scalars=False)`), which spares a look at every string of every object.

    msgspec reads most envelopes: it refuses what RFC 8259 does not allow (NaN, numbers no double holds, lone
    surrogates, invalid UTF-8, a byte order mark) and keeps integers exact, in half the json module's
    time. What it refuses is read again below, where each such value becomes a marker or a string that
    `problem_in` reports, so that one bad object is refused on its own and its neighbours are stored."""
    if isinstance(body, bytes):
        try:
            return _MSGSPEC_JSON.decode(body), True
        except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
            pass
    markers: list[str] = []

    def marker(text: str) -> NotJsonNumber:
        markers.append(text)
        return NotJsonNumber(text)

    def float_or_marker(text: str) -> float | NotJsonNumber:
        value = float(text)
        return value if math.isfinite(value) else marker(text)

    def int_or_marker(text: str) -> int | NotJsonNumber:
        # Python refuses to convert more than 4,300 digits (CVE-2020-10735): a per-object problem.
        return int(text) if len(text) <= 4300 else marker(text[:20] + "...")

    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        value = json.loads(text, parse_constant=marker, parse_float=float_or_marker, parse_int=int_or_marker)
    except RecursionError:
        raise JsonInputError(
            "it nests JSON arrays or objects too deeply to read; a STIX object needs only a few levels"
        ) from None
    except UnicodeDecodeError as error:
        raise JsonInputError(f"it is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except ValueError as error:
        raise JsonInputError(f"it is not valid JSON: {error}") from None
    no_raw_surrogates = isinstance(body, bytes) or text.isascii()  # UTF-8 cannot encode one, only an escape
    return value, not markers and no_raw_surrogates and _SURROGATE_ESCAPE.search(text) is None


def _string_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"the string {text[:40]!r} holds a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def _scalar_problem(value) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, NotJsonNumber):
        return f"the number {value.text} is not a JSON number (RFC 8259 §6) or cannot be represented"
    if isinstance(value, float) and not math.isfinite(value):  # from a reader without markers (publish)
        return f"the number {value} is not a JSON number (RFC 8259 §6) or cannot be represented"
    return None


def problem_in(value, max_depth: int = MAX_OBJECT_DEPTH, scalars: bool = True) -> str | None:
    """The first reason `value` cannot be stored and served as JSON, or None. `scalars=False` checks only
    the nesting, for a value from a clean text (`loads_screened`)."""
    if not scalars:
        return _nesting_problem(value, max_depth)
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            if problem := _scalar_problem(item):
                return problem
            continue
        if depth >= max_depth:
            return _too_deep(max_depth)
        if isinstance(item, dict):
            for key in item:
                if problem := _string_problem(key):
                    return problem
            children = item.values()
        else:
            children = item
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif problem := _scalar_problem(child):
                return problem
    return None


def _nesting_problem(value, max_depth: int) -> str | None:
    stack = [(value, 0)] if type(value) in _CONTAINERS else []
    while stack:
        item, depth = stack.pop()
        if depth >= max_depth:
            return _too_deep(max_depth)
        for child in item.values() if type(item) is dict else item:
            if type(child) in _CONTAINERS:  # parsed JSON holds exactly dict and list, never subclasses
                stack.append((child, depth + 1))
    return None


_CONTAINERS = frozenset((dict, list))


def _too_deep(max_depth: int) -> str:
    return f"it nests arrays or objects deeper than {max_depth} levels"
