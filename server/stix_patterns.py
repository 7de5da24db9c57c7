"""STIX pattern validation at ingest speed.

stix2 validates every indicator's pattern with stix2-patterns' ANTLR parser: about 1 ms a pattern, which
alone caps ingest near 1,000 indicators/s. Real feeds repeat a few pattern *shapes* with different
values (`[ipv4-addr:value = '…']`, `[file:hashes.'SHA-256' = '…']`), and the validator's verdict depends
on the values in only one way: hash values are checked against per-algorithm hex lengths. So a pattern
is validated once per shape: string values are replaced by a stand-in with the same verdict (all-hex
values by 'a' repeated to the same length; other values by '' unless the pattern names hashes), and a
shape that validates means the pattern validates. A shape that fails is re-validated in full, so error
messages always quote the real pattern.

The parser's cost grows faster than the pattern (measured: 100 OR'd terms ~30 ms, 256 ~200 ms, a 500 KB
string literal 0.5 s, 1,000 terms or deep parentheses exhaust the stack), so patterns above the limits
below are refused before it runs: an attacker must not buy seconds of CPU with one indicator.
"""

import re
from functools import lru_cache

import stix2.v20.sdo
import stix2.v21.sdo
from stix2patterns.validator import run_validator

_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\['\\])*'")
_HEX = re.compile(r"^[A-Fa-f0-9]+$")
_LITERAL_PREFIXES = ("t", "b", "h")  # timestamp, binary and hex literals keep their text
MAX_PATTERN_LENGTH = 16 * 1024
MAX_PATTERN_OPERATORS = 100  # AND, OR, FOLLOWEDBY and qualifiers together
MAX_PATTERN_NESTING = 16
_OPERATOR = re.compile(r"\b(?:AND|OR|FOLLOWEDBY|WITHIN|REPEATS|START)\b")


def limits_problem(pattern: str) -> str | None:
    """Why a pattern is too large or complex to validate, or None."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"the pattern has {len(pattern)} characters; at most {MAX_PATTERN_LENGTH} are accepted"
    outside_literals = _STRING_LITERAL.sub("''", pattern)
    operators = len(_OPERATOR.findall(outside_literals))
    if operators > MAX_PATTERN_OPERATORS:
        return (
            f"the pattern combines {operators} operators and qualifiers; at most {MAX_PATTERN_OPERATORS} are "
            "accepted: split it into several indicators"
        )
    depth = deepest = 0
    for character in outside_literals:
        if character in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif character in ")]":
            depth -= 1
    if deepest > MAX_PATTERN_NESTING:
        return f"the pattern nests brackets {deepest} deep; at most {MAX_PATTERN_NESTING} levels are accepted"
    return None


def pattern_shape(pattern: str) -> str | None:
    """The pattern with its compared string values replaced by verdict-preserving stand-ins, or None when
    the pattern cannot be reduced safely (then it is validated as it is)."""
    keep_non_hex = "hashes" in pattern
    parts, position = [], 0
    while True:
        quote = pattern.find("'", position)
        if quote < 0:
            parts.append(pattern[position:])
            return "".join(parts)
        literal = _STRING_LITERAL.match(pattern, quote)
        if literal is None:
            return None
        before = pattern[:quote].rstrip()
        value = literal.group()[1:-1]
        is_path_step = before.endswith(".")
        is_prefixed = pattern[quote - 1 : quote] in _LITERAL_PREFIXES if quote else False
        if is_path_step or is_prefixed:
            stand_in = literal.group()
        elif _HEX.match(value):
            stand_in = "'" + "a" * len(value) + "'"
        elif keep_non_hex:
            stand_in = literal.group()
        else:
            stand_in = "''"
        parts.append(pattern[position:quote])
        parts.append(stand_in)
        position = literal.end()


@lru_cache(maxsize=4096)
def _shape_is_valid(shape: str, version: str) -> bool:
    return not run_validator(shape, version)


def validate_pattern(pattern: str, version: str = "2.1") -> list[str]:
    """Same verdict as stix2patterns' run_validator (an empty list when the pattern is valid), for patterns
    within the limits; a pattern above them gets the reason as its one error."""
    if isinstance(pattern, str) and (problem := limits_problem(pattern)):
        return [problem]
    shape = pattern_shape(pattern) if isinstance(pattern, str) else None
    if shape is not None and _shape_is_valid(shape, version):
        return []
    return run_validator(pattern, version)


def install() -> None:
    """Make stix2 validate indicator patterns through the shape cache (one process-wide switch, used by
    server.validation; the verdicts are the library's own)."""
    stix2.v21.sdo.run_validator = validate_pattern
    stix2.v20.sdo.run_validator = validate_pattern  # called with version '2.0'; the limits apply alike
