"""The hostile requests of the fuzzer (bench/fuzz.py): one generator per input class of issue 11, each
turning a seeded random source into a whole HTTP/1.1 request as bytes, so that every byte (framing, paths,
headers, bodies) can be chosen by an attacker, and a run is repeatable from its seed.

Objects start from real STIX (the OASIS examples and ATT&CK ICS in tests/data) and are then broken one
property at a time, so each probe reaches the code that handles that property rather than failing early."""

import base64
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from tests.conftest import COLLECTION_ID, PASSWORDS, SECRET_ID, STRICT_ID, TAXII, load_bundle

UNKNOWN_COLLECTION = "9a0f6b1e-5a54-4c3e-8a52-4f6f0e4d2aff"
ROLES = ("cert", "soc", "writer", "nogrant", "mirror")
COMMON_PROPERTIES = (
    "type",
    "id",
    "spec_version",
    "created",
    "modified",
    "extensions",
    "object_marking_refs",
    "granular_markings",
    "created_by_ref",
    "labels",
    "external_references",
    "revoked",
    "confidence",
    "lang",
    "name",
    "pattern",
    "pattern_type",
    "valid_from",
    "kill_chain_phases",
)
WRONG_VALUES = (
    None,
    0,
    -1,
    1.5,
    True,
    "",
    "x",
    [],
    {},
    [None],
    [1],
    [[]],
    {"a": None},
    ["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", 5],
    [{"selectors": None}],
    [{"marking_ref": 5, "selectors": ["x"]}],
    {"extension-definition--" + "0" * 36: None},
    "2016-13-45T99:99:99Z",
    "2016-04-06T20:03:48.000Z" + "0" * 50,
)


@dataclass(frozen=True)
class Probe:
    """One request: its input class, a short description for reports, and the bytes to send."""

    input_class: str
    summary: str
    request: bytes
    # The body is cut short or the framing leaves the server waiting for more: the client gives up after a
    # short wait, and that is not counted as a hang (the server must not hold a worker for it, which the
    # other requests of the run would show as hangs).
    incomplete: bool = False


@dataclass
class Target:
    """What the fuzzer knows of the node: its address and what earlier answers revealed."""

    host: str
    port: int
    objects: list[dict] = field(default_factory=list)
    object_ids: list[str] = field(default_factory=list)
    status_ids: list[str] = field(default_factory=list)
    next_tokens: list[str] = field(default_factory=list)

    @classmethod
    def with_real_objects(cls, host: str, port: int) -> "Target":
        objects = load_bundle("oasis-examples/apt1.json") + load_bundle("oasis-examples/poisonivy.json")
        objects += load_bundle("attack/ics-attack-18.1.json")[:300]
        return cls(host, port, objects=objects, object_ids=[o["id"] for o in objects[:50]])


def _credentials(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_header(rng: random.Random, good: bool = True) -> dict[str, str]:
    if good:
        user = rng.choice(ROLES)
        return {"Authorization": _credentials(user, PASSWORDS[user])}
    return {
        "Authorization": rng.choice(
            [
                _credentials("cert", "wrong-password"),
                _credentials("no-such-user", "whatever"),
                "Basic",
                "Basic !!!!",
                "Basic " + base64.b64encode(b"no-colon").decode(),
                "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
                "Bearer abc.def.ghi",
                "basic " + base64.b64encode(b"cert:").decode(),
                _credentials("cert", "x" * 5000),
                "Basic " + "A" * 20000,
            ]
        )
    }


def build_request(
    target: Target,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str | None = TAXII,
) -> bytes:
    fields = {"Host": f"{target.host}:{target.port}", "Accept": TAXII}
    if body is not None:
        fields["Content-Type"] = content_type
        fields["Content-Length"] = str(len(body))
    fields.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items() if value is not None
    )
    return head.encode("latin-1", "replace") + b"\r\n" + (body or b"")


def collection_path(collection_id: str = COLLECTION_ID, api_root: str = "alliance") -> str:
    return f"/{api_root}/collections/{collection_id}/"


def resource_paths(rng: random.Random, target: Target) -> list[str]:
    """Every kind of TAXII resource, on collections the roles can and cannot see."""
    collection_id = rng.choice([COLLECTION_ID, COLLECTION_ID, STRICT_ID, UNKNOWN_COLLECTION, "not-a-uuid"])
    api_root = "national" if collection_id == SECRET_ID else rng.choice(["alliance", "alliance", "national"])
    if rng.random() < 0.1:
        collection_id, api_root = SECRET_ID, "national"
    base = collection_path(collection_id, api_root)
    object_id = rng.choice(target.object_ids) if target.object_ids else "indicator--" + str(uuid.uuid4())
    status_id = rng.choice(target.status_ids) if target.status_ids else str(uuid.uuid4())
    return [
        "/taxii2/",
        f"/{api_root}/",
        f"/{api_root}/collections/",
        base,
        base + "objects/",
        base + "manifest/",
        f"{base}objects/{object_id}/",
        f"{base}objects/{object_id}/versions/",
        f"/{api_root}/status/{status_id}/",
    ]


def _quote(text: str, safe: str = "") -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)  # lone surrogates become %ED%A0%80


def query(params: list[tuple[str, str]]) -> str:
    return "?" + "&".join(f"{_quote(name, '[]')}={_quote(value)}" for name, value in params)


def fresh_object(rng: random.Random, target: Target) -> dict:
    """A real object under a new id (so it is stored, not 'already present')."""
    obj = json.loads(json.dumps(rng.choice(target.objects)))
    if obj.get("type") != "marking-definition":
        obj["id"] = f"{obj['type']}--{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    return obj


def envelope(objects: list) -> bytes:
    return json.dumps({"objects": objects}, ensure_ascii=False).encode("utf-8", "surrogatepass")


def post(rng: random.Random, target: Target, input_class: str, summary: str, body: bytes, **headers) -> Probe:
    collection_id = rng.choice([COLLECTION_ID, COLLECTION_ID, COLLECTION_ID, STRICT_ID])
    request = build_request(
        target,
        "POST",
        collection_path(collection_id) + "objects/",
        {**auth_header(rng), **headers} if "Authorization" not in headers else headers,
        body,
    )
    return Probe(input_class, summary, request)


def post_as_cert(rng: random.Random, target: Target, input_class: str, summary: str, body: bytes) -> Probe:
    headers = {"Authorization": _credentials("cert", PASSWORDS["cert"])}
    request = build_request(target, "POST", collection_path() + "objects/", headers, body)
    return Probe(input_class, summary, request)


# -- the input classes -----------------------------------------------------------------------------------


def valid_reads(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target))
    params: list[tuple[str, str]] = []
    if "/objects/" in path or path.endswith("manifest/"):
        if rng.random() < 0.5:
            params.append(("limit", str(rng.choice([1, 2, 10, 100, 1000]))))
        if rng.random() < 0.3:
            params.append(("match[type]", rng.choice(["indicator", "malware,indicator", "x-mitre-tactic"])))
        if rng.random() < 0.3:
            params.append(
                ("match[version]", rng.choice(["all", "first", "last", "2016-04-06T20:03:48.000Z"]))
            )
        if rng.random() < 0.2 and target.next_tokens:
            params.append(("next", rng.choice(target.next_tokens)))
        if rng.random() < 0.2:
            params.append(("added_after", "2016-01-01T00:00:00Z"))
    target_text = path + (query(params) if params else "")
    return Probe(
        "valid requests",
        f"GET {target_text[:80]}",
        build_request(target, "GET", target_text, auth_header(rng)),
    )


def valid_posts(rng: random.Random, target: Target) -> Probe:
    objects = [fresh_object(rng, target) for _ in range(rng.choice([1, 3, 20]))]
    return post(rng, target, "valid requests", f"POST {len(objects)} real objects", envelope(objects))


_HOSTILE_PARAMETER_VALUES = (
    "",
    " ",
    "abc",
    "-1",
    "0",
    "1e9",
    "99999999999999999999999999",
    "1" * 5000,
    "2016-02-30T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-01-01T00:00:00Z",
    "2016-04-06T20:03:48",
    "\x00",
    "\ud800",
    "é" * 100,
    "null",
    "[]",
    "all,first,last," * 50,
    ",".join(["indicator"] * 3000),
    ",".join(f"indicator--{uuid.UUID(int=i, version=4)}" for i in range(2000)),
)


def _deep_next(rng: random.Random) -> str:
    depth = rng.choice([100, 5000, 50000])
    return base64.urlsafe_b64encode(("[" * depth + "]" * depth).encode()).decode()


def _forged_next(rng: random.Random) -> str:
    payload = rng.choice(
        [
            '["0000000000000000", "x"]',
            '["0000000000000000", 1e400]',
            '["0000000000000000", NaN]',
            '["0000000000000000", 99999999999999999999999999999999]',
            '["0000000000000000", -5]',
            '{"a": 1}',
            "[1, 2, 3]",
            '"text"',
            "null",
            '["\\ud800", 1]',
            '[["0000000000000000"], 1]',
        ]
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def bad_parameters(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target)[4:8])
    name = rng.choice(
        [
            "added_after",
            "limit",
            "next",
            "match[id]",
            "match[type]",
            "match[version]",
            "match[spec_version]",
            "match[foo]",
            "match[",
            "x" * 3000,
        ]
    )
    if name == "next":
        value = rng.choice(
            [_deep_next(rng), _forged_next(rng), "!!!", "A" * 10000, rng.choice(_HOSTILE_PARAMETER_VALUES)]
        )
    else:
        value = rng.choice(_HOSTILE_PARAMETER_VALUES)
    params = [(name, value)] * rng.choice([1, 1, 2, 50])
    raw_query = query(params)
    if rng.random() < 0.1:
        raw_query = rng.choice(
            ["?limit=%ZZ", "?match[type]=%ED%A0%80", "?added_after=%FF%FE", "?%00=%00", "?&&&=&"]
        )
    request = build_request(target, "GET", path + raw_query, auth_header(rng))
    return Probe("bad URL parameters", f"GET {path[:40]} {name[:20]}={value[:30]!r}", request)


def deep_json(rng: random.Random, target: Target) -> Probe:
    depth = rng.choice([200, 1000, 5000, 100_000])
    where = rng.choice(["body", "objects", "property", "extension"])
    nested = "[" * depth + "]" * depth
    if where == "body":
        body = nested
    elif where == "objects":
        body = '{"objects": [' + nested + "]}"
    else:
        obj = fresh_object(rng, target)
        text = json.dumps(obj)
        key = "x_deep" if where == "property" else "extensions"
        inner = '{"a":' * depth + "1" + "}" * depth
        body = (
            '{"objects": [' + text[:-1] + f', "{key}": ' + (inner if key == "extensions" else nested) + "}]}"
        )
    return post(rng, target, "deeply nested JSON", f"depth {depth} in {where}", body.encode())


def bad_unicode(rng: random.Random, target: Target) -> Probe:
    obj = fresh_object(rng, target)
    choice = rng.randrange(6)
    if choice == 0:
        obj[rng.choice(["name", "description", "x_note"])] = "bad \ud800 surrogate"
        body = envelope([obj])
    elif choice == 1:
        obj["x_\udfff"] = "surrogate in a key"
        body = envelope([obj])
    elif choice == 2:
        body = envelope([obj]).replace(b'"type"', b'"ty\xffpe"', 1)
    elif choice == 3:
        body = envelope([obj]).replace(b'"id": "', b'"id": "\xc0\xaf', 1)
    elif choice == 4:
        body = json.dumps({"objects": [obj]}).encode("utf-16")
    else:
        obj["id"] = obj["id"][:-4] + "\ud83d" + obj["id"][-3:]
        body = envelope([obj])
    return post(rng, target, "invalid Unicode", f"variant {choice}", body)


def wrong_types(rng: random.Random, target: Target) -> Probe:
    obj = fresh_object(rng, target)
    name = rng.choice(COMMON_PROPERTIES)
    value = rng.choice(WRONG_VALUES)
    obj[name] = value
    neighbours = [fresh_object(rng, target) for _ in range(rng.choice([0, 2]))]
    return post(rng, target, "wrong types", f"{name}={value!r:.40}", envelope([*neighbours, obj]))


def _pattern(rng: random.Random) -> str:
    term = "[ipv4-addr:value = '198.51.100.1']"
    count = rng.choice([100, 2000, 20000])
    return rng.choice(
        [
            "",
            " ",
            "[",
            "]]]]",
            "[x:y = 'z'] AND",
            " OR ".join([term] * count),
            "(" * count + term + ")" * count,
            "[" * count + "ipv4-addr:value = '1'" + "]" * count,
            "[ipv4-addr:value = '" + "a" * 500_000 + "']",
            term + " REPEATS 99999999999999999999 TIMES" * 10,
            "[file:hashes.'SHA-256' = '" + "f" * 64 + "'] " + "WITHIN 1 SECONDS " * count,
            "[ipv4-addr:value MATCHES '" + "(a+)+" * 50 + "$']",
            "\x00\x01\x02",
        ]
    )


def patterns(rng: random.Random, target: Target) -> Probe:
    indicator = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "pattern": _pattern(rng),
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
    }
    return post(
        rng,
        target,
        "indicator patterns",
        f"pattern of {len(indicator['pattern'])} chars",
        envelope([indicator]),
    )


def numbers(rng: random.Random, target: Target) -> Probe:
    obj = fresh_object(rng, target)
    literal = rng.choice(
        ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 5000, "1e-400", "-0"]
    )
    key = rng.choice(["confidence", "x_score", "revoked", "created"])
    text = json.dumps(obj)[:-1] + f', "{key}": {literal}' + "}"
    body = '{"objects": [' + text + "]}"
    if rng.random() < 0.2:
        body = '{"objects": [], "more": ' + literal + "}"
    return post(rng, target, "numbers outside JSON", f"{key}: {literal[:12]}", body.encode())


def type_id_mismatch(rng: random.Random, target: Target) -> Probe:
    obj = fresh_object(rng, target)
    suffix = obj["id"].partition("--")[2]
    obj["id"] = rng.choice(
        [
            f"malware--{suffix}" if obj["type"] != "malware" else f"indicator--{suffix}",
            f"x-custom-thing--{suffix}",
            f"{obj['type']}--not-a-uuid",
            f"{obj['type'].upper()}--{suffix}",
            f"{obj['type']}--{suffix}--extra",
            f"--{suffix}",
            f"{obj['type']}--{suffix[:-1]}",
        ]
    )
    if rng.random() < 0.3:
        obj["type"] = rng.choice(["x-custom-thing", "X-UPPER", "a", "x_underscore", "-dash", "t" * 300])
    return post(
        rng, target, "type and id disagree", f"{obj['type'][:20]} / {obj['id'][:40]}", envelope([obj])
    )


def huge_strings(rng: random.Random, target: Target) -> Probe:
    obj = fresh_object(rng, target)
    size = rng.choice([100_000, 900_000, 3_000_000])
    where = rng.choice(["description", "id", "type", "key", "many-keys", "object_marking_refs"])
    if where == "description":
        obj["description"] = "d" * size
    elif where == "id":
        obj["id"] = obj["type"] + "--" + "a" * size
    elif where == "type":
        obj["type"] = "x" * size
    elif where == "key":
        obj["x_" + "k" * size] = 1
    elif where == "many-keys":
        obj.update({f"x_key_{index}": index for index in range(size // 20)})
    else:
        obj["object_marking_refs"] = ["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"] * (
            size // 60
        )
    return post(rng, target, "huge strings", f"{size} bytes in {where}", envelope([obj]))


def envelope_shapes(rng: random.Random, target: Target) -> Probe:
    bodies: list[Callable[[], bytes]] = [
        lambda: b"",
        lambda: b"[]",
        lambda: b"null",
        lambda: b"1",
        lambda: b'"objects"',
        lambda: b"{}",
        lambda: b'{"objects": {}}',
        lambda: b'{"objects": null}',
        lambda: b'{"objects": "x"}',
        lambda: b'{"objects": [1, "a", null, [], true]}',
        lambda: b'{"objects": []}',
        lambda: b'{"objects": [{}]}',
        lambda: b'{"objects": [{"type": "indicator"}]}',
        lambda: b'{"objects": [], "objects": [1]}',
        lambda: b"\xef\xbb\xbf" + envelope([fresh_object(rng, target)]),
        lambda: envelope([fresh_object(rng, target)]) + b" trailing",
        lambda: json.dumps(
            {"objects": [{"type": "x-tiny", "id": f"x-tiny--{uuid.uuid4()}"}] * 30000}
        ).encode(),
    ]
    body = rng.choice(bodies)()
    return post(rng, target, "envelope shapes", f"{body[:40]!r}", body)


def _raw(target: Target, lines: list[str], body: bytes = b"") -> bytes:
    credentials = _credentials("cert", PASSWORDS["cert"])
    head = [
        *lines[:1],
        f"Host: {target.host}:{target.port}",
        f"Authorization: {credentials}",
        f"Accept: {TAXII}",
    ]
    return ("\r\n".join(head + lines[1:]) + "\r\n\r\n").encode("latin-1") + body


def framing(rng: random.Random, target: Target) -> Probe:
    objects_path = collection_path() + "objects/"
    body = envelope([fresh_object(rng, target)])
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    post_line = f"POST {objects_path} HTTP/1.1"
    content_type = f"Content-Type: {TAXII}"
    cases = [
        (
            "CL and TE",
            [post_line, content_type, f"Content-Length: {len(body)}", "Transfer-Encoding: chunked"],
            chunked,
            False,
        ),
        ("negative CL", [post_line, content_type, "Content-Length: -5"], body, False),
        ("CL not a number", [post_line, content_type, "Content-Length: abc"], body, False),
        (
            "two CLs",
            [post_line, content_type, f"Content-Length: {len(body)}", "Content-Length: 3"],
            body,
            False,
        ),
        ("CL huge", [post_line, content_type, "Content-Length: 99999999999999999999999"], body, False),
        ("CL short", [post_line, content_type, f"Content-Length: {len(body) - 5}"], body, False),
        ("CL long", [post_line, content_type, f"Content-Length: {len(body) + 100}"], body, True),
        (
            "bad chunk size",
            [post_line, content_type, "Transfer-Encoding: chunked"],
            b"zz\r\nabc\r\n0\r\n\r\n",
            False,
        ),
        (
            "huge chunk size",
            [post_line, content_type, "Transfer-Encoding: chunked"],
            b"ffffffffffffffff\r\nabc",
            True,
        ),
        ("chunked no end", [post_line, content_type, "Transfer-Encoding: chunked"], b"5\r\nabcde\r\n", True),
        ("TE gzip", [post_line, content_type, "Transfer-Encoding: gzip"], body, False),
        ("TE twice", [post_line, content_type, "Transfer-Encoding: chunked, chunked"], chunked, False),
        ("obs-fold", ["GET /taxii2/ HTTP/1.1", "X-Folded: a", " b"], b"", False),
        ("no Host HTTP/1.1", None, b"", False),
        ("HTTP/1.0", ["GET /taxii2/ HTTP/1.0"], b"", False),
        ("absolute form", [f"GET http://{target.host}:{target.port}/taxii2/ HTTP/1.1"], b"", False),
        ("asterisk", ["OPTIONS * HTTP/1.1"], b"", False),
        ("long request line", ["GET /taxii2/?" + "a" * 200_000 + " HTTP/1.1"], b"", False),
        ("many headers", ["GET /taxii2/ HTTP/1.1", *[f"X-H{i}: v" for i in range(2000)]], b"", False),
        ("header no colon", ["GET /taxii2/ HTTP/1.1", "NoColonHere"], b"", False),
        ("space before colon", ["GET /taxii2/ HTTP/1.1", "X-Bad : v"], b"", False),
        ("lowercase method", ["get /taxii2/ HTTP/1.1"], b"", False),
        ("unknown version", ["GET /taxii2/ HTTP/3.7"], b"", False),
        ("huge header", ["GET /taxii2/ HTTP/1.1", "X-Big: " + "b" * 300_000], b"", False),
    ]
    name, lines, payload, incomplete = rng.choice(cases)
    if lines is None:
        request = f"GET /taxii2/ HTTP/1.1\r\nAccept: {TAXII}\r\n\r\n".encode()
    else:
        request = _raw(target, lines, payload)
    if rng.random() < 0.05:
        request = rng.choice(
            [
                b"GET /taxii2/\r\n\r\n",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                bytes(rng.getrandbits(8) for _ in range(64)),
            ]
        )
        name, incomplete = "garbage", True
    return Probe("conflicting framing", name, request, incomplete)


def paths(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target))
    variant = rng.randrange(8)
    if variant == 0:
        path = path.rstrip("/")
    elif variant == 1:
        path = path.replace("/", "//")
    elif variant == 2:
        path = rng.choice(
            ["/", "/favicon.ico", "/taxii", "/taxii2/x/", "/.env", "/admin/", "/alliance/x/y/z/"]
        )
    elif variant == 3:
        path = path + "../../etc/passwd"
    elif variant == 4:
        path = path.replace("/collections/", "/collections%2F")
    elif variant == 5:
        path = "/" + "a/" * 5000
    elif variant == 6:
        path = "/%ED%A0%80/" + rng.choice(["", "collections/"])
    else:
        path = path.rstrip("/") + rng.choice(["?", "#x", ";x", "/.", "%00/"])
    return Probe("paths", f"GET {path[:60]}", build_request(target, "GET", path, auth_header(rng)))


def hostile_headers(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target))
    name, value = rng.choice(
        [
            ("Accept", "text/html"),
            ("Accept", "application/taxii+json;version=2.1;q=abc"),
            ("Accept", "application/taxii+json;version=9"),
            ("Accept", "," * 5000),
            ("Accept", "a/" + "b" * 5000),
            ("Accept", "*/*;q=0"),
            ("Accept", ""),
            ("X-TAXII-Fed-Origin", "\u00e9" * 100),
            ("X-TAXII-Fed-Link", "a" * 8000),
            ("X-TAXII-Fed-Provenance", "include"),
            ("X-TAXII-Fed-Validated", "stix2"),
            ("Range", "bytes=0-10"),
            ("If-None-Match", "*"),
            ("Connection", "upgrade"),
            ("Upgrade", "websocket"),
        ]
    )
    headers = {**auth_header(rng), name: value}
    body = None
    method = "GET"
    if rng.random() < 0.3:
        method, path = "POST", collection_path() + "objects/"
        body = envelope([fresh_object(rng, target)])
        if rng.random() < 0.5:
            headers["Content-Type"] = rng.choice(
                ["application/json", "text/plain", "application/taxii+json;version=2.0", "", "a" * 3000]
            )
    return Probe(
        "hostile headers",
        f"{method} {name}: {value[:30]!r}",
        build_request(target, method, path, headers, body),
    )


def credentials_and_roles(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target))
    method = rng.choice(["GET", "GET", "DELETE", "POST"])
    good = rng.random() < 0.85
    headers = auth_header(rng, good) if rng.random() < 0.95 else {}
    body = envelope([fresh_object(rng, target)]) if method == "POST" else None
    summary = f"{method} {path[:50]} as {headers.get('Authorization', 'nobody')[:20]}"
    return Probe("credentials and roles", summary, build_request(target, method, path, headers, body))


def methods(rng: random.Random, target: Target) -> Probe:
    path = rng.choice(resource_paths(rng, target))
    method = rng.choice(["PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT", "FOO", "DELETE", "POST"])
    body = b"{}" if method in ("PUT", "PATCH", "POST") else None
    return Probe(
        "methods", f"{method} {path[:60]}", build_request(target, method, path, auth_header(rng), body)
    )


GENERATORS: dict[Callable[[random.Random, Target], Probe], int] = {
    valid_reads: 12,
    valid_posts: 4,
    bad_parameters: 12,
    deep_json: 4,
    bad_unicode: 6,
    wrong_types: 12,
    patterns: 5,
    numbers: 5,
    type_id_mismatch: 5,
    huge_strings: 2,
    envelope_shapes: 4,
    framing: 6,
    paths: 8,
    hostile_headers: 6,
    credentials_and_roles: 8,
    methods: 4,
}


def next_probe(rng: random.Random, target: Target) -> Probe:
    generator = rng.choices(list(GENERATORS), weights=list(GENERATORS.values()))[0]
    return generator(rng, target)
