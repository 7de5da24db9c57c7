"""Benchmark data: real ATT&CK objects, then generated STIX 2.1 indicators for volume.

The indicators vary the way a CERT feed does (IPv4 addresses, domains, URLs, SHA-256 hashes), so the
pattern validator sees realistic shapes and values.
"""

import hashlib
import json
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ATTACK_ICS = REPO / "tests" / "data" / "attack" / "ics-attack-18.1.json"
_PATTERNS = (
    lambda n: f"[ipv4-addr:value = '10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}']",
    lambda n: f"[domain-name:value = 'host-{n}.bad.example']",
    lambda n: f"[url:value = 'http://host-{n}.bad.example/payload']",
    lambda n: f"[file:hashes.'SHA-256' = '{hashlib.sha256(str(n).encode()).hexdigest()}']",
)


def indicator(n: int, seed: str = "bench") -> dict:
    stamp = f"2026-01-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00.{n % 1000:03d}Z"
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, f'{seed}/{n}')}",
        "created": stamp,
        "modified": stamp,
        "name": f"Generated indicator {n}",
        "indicator_types": ["malicious-activity"],
        "pattern": _PATTERNS[n % len(_PATTERNS)](n),
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": stamp,
    }


def attack_objects() -> list[dict]:
    return json.loads(ATTACK_ICS.read_text(encoding="utf-8"))["objects"]


def middle_id(count: int, seed: str = "bench") -> str:
    """The id of the middle object of `objects(count, seed)`: one a filled collection is known to hold."""
    return next(islice(objects(count, seed), count // 2, None))["id"]


def envelopes(count: int, envelope_size: int, seed: str = "bench") -> list[str]:
    """`objects(count, seed)` as serialised envelopes of `envelope_size`, ready to POST: serialised before a
    clock starts, so an ingest figure is the server's, not the client's."""
    stream = list(objects(count, seed))
    return [json.dumps({"objects": stream[i : i + envelope_size]}) for i in range(0, count, envelope_size)]


def objects(count: int, seed: str = "bench") -> Iterator[dict]:
    """`count` objects: ATT&CK ICS objects alternating with generated indicators while the release lasts,
    then indicators; every collection size holds both kinds. The release's one object without `modified`
    (its marking-definition) is left out: OpenTAXII 0.9.3 answers 500 to such objects, and every server
    must get the same data."""
    real = iter(obj for obj in attack_objects() if "modified" in obj)
    generated = 0
    for position in range(count):
        obj = next(real, None) if position % 2 == 0 else None
        if obj is None:
            obj = indicator(generated, seed)
            generated += 1
        yield obj
