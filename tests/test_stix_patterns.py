"""The pattern-shape cache gives exactly stix2-patterns' verdict on valid and invalid patterns."""

import pytest
from stix2patterns.validator import run_validator

from taxii_federation.server.stix_patterns import pattern_shape, validate_pattern
from tests.conftest import load_bundle

SHA256 = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
PATTERNS = [
    "[ipv4-addr:value = '198.51.100.3']",
    f"[file:hashes.'SHA-256' = '{SHA256}']",
    f"[file:hashes.'SHA-256' = '{SHA256[:-1]}']",  # one digit short: invalid
    "[file:hashes.'SHA-256' = 'not-hex-at-all']",  # invalid
    "[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f']",
    "[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879']",  # invalid
    "[url:value = 'http://example.com/it\\'s']",
    "[url:value = 'bad escape \\n']",  # invalid escape
    "[domain-name:value = 'example.com'] AND [ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]",
    "[file:name = 'x'] REPEATS 5 TIMES WITHIN 300 SECONDS",
    "[file:name = 'x'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
    "[file:name = 'x'] START t'2016-06-01' STOP t'2016-07-01T00:00:00Z'",  # invalid timestamp
    "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\SOFTWARE']",
    "[ipv4-addr:value = '1.2.3.4'",  # unclosed
    "[x_custom:value = 'a' AND",  # truncated
    "[email-message:from_ref.value MATCHES '.+@example\\\\.com$']",
    "[network-traffic:dst_port = 80 AND network-traffic:protocols[*] = 'tcp']",
    "[ipv4-addr:value = '1.2.3.4'] WITHIN 10 SECONDS WITHIN 20 SECONDS",  # duplicate qualifier
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cached_verdict_equals_the_library_verdict(pattern):
    validate_pattern(pattern)  # fill the cache with this shape
    assert bool(validate_pattern(pattern)) == bool(run_validator(pattern, "2.1"))


def test_patterns_that_differ_only_in_values_share_a_shape():
    assert pattern_shape("[ipv4-addr:value = '1.2.3.4']") == pattern_shape("[ipv4-addr:value = '10.0.0.1']")
    short = f"[file:hashes.'SHA-256' = '{SHA256[:-1]}']"
    assert pattern_shape(short) != pattern_shape(f"[file:hashes.'SHA-256' = '{SHA256}']")


def test_every_real_indicator_pattern_gets_the_library_verdict():
    indicators = [
        o
        for path in (
            "oasis-examples/apt1.json",
            "oasis-examples/poisonivy.json",
            "oasis-examples/indicator-for-malicious-url.json",
        )
        for o in load_bundle(path)
        if o["type"] == "indicator"
    ]
    assert indicators
    for indicator in indicators:
        assert validate_pattern(indicator["pattern"]) == run_validator(indicator["pattern"], "2.1") == []


def test_an_invalid_pattern_reports_the_library_message_for_the_real_pattern():
    pattern = "[file:hashes.'SHA-256' = 'abc']"
    assert validate_pattern(pattern) == run_validator(pattern, "2.1")
    assert "abc" in validate_pattern(pattern)[0]
