"""Input an attacker chooses, one class at a time (issue 11's list): each gets the spec's status with a TAXII
error message, never a 500 or HTML; one bad object in an envelope fails alone with a message saying what to
fix, and its valid neighbours are stored; nothing stored can make a later answer invalid JSON."""

import base64
import json
import time
import uuid

import pytest
import requests

from taxii_federation.server import json_input, validation
from taxii_federation.server.storage.base import NewObject
from tests.conftest import COLLECTION_ID, PASSWORDS, TAXII, load_bundle

INDICATOR = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
MALWARE = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "malware")


@pytest.fixture
def storage_url(tmp_path) -> str:
    """Input is judged before storage, the same for both backends: these tests run on SQLite only."""
    return f"sqlite:{tmp_path / 'node.db'}"


def _new(obj: dict, **changes) -> dict:
    """A copy of a real object under a fresh id, with `changes`."""
    return {**obj, "id": f"{obj['type']}--{uuid.uuid4()}", **changes}


def _post_body(node, body: bytes | str, **headers) -> requests.Response:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return node.session().post(node.objects_url(), data=data, headers={"Content-Type": TAXII, **headers})


def _assert_taxii_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == TAXII
    error = response.json()
    assert error["http_status"] == str(status) and error["title"]
    return error


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


def _stored_ids(node) -> set[str]:
    response = node.session("soc").get(node.objects_url(), params={"match[version]": "all"})
    assert response.status_code == 200
    response.content.decode("utf-8")  # every answer is valid UTF-8
    return {o["id"] for o in _strict(response.text).get("objects", [])}


def _post_with_neighbour(node, text_of_bad_object: str) -> dict:
    """POST a bad object between two good ones; the status must refuse only the bad one."""
    good = [_new(MALWARE), _new(MALWARE)]
    body = '{"objects": [' + json.dumps(good[0]) + "," + text_of_bad_object + "," + json.dumps(good[1]) + "]}"
    response = _post_body(node, body)
    assert response.status_code == 202, response.text[:300]
    status = response.json()
    assert status["success_count"] == 2 and status["failure_count"] == 1, status
    assert {o["id"] for o in good} <= _stored_ids(node)
    return status["failures"][0]


# -- JSON nested thousands of levels deep ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_a_body_nested_thousands_of_levels_deep_is_refused_whole(node, depth):
    error = _assert_taxii_error(_post_body(node, "[" * depth + "]" * depth), 400)
    assert "nests JSON" in error["description"]


def test_an_object_nested_deeper_than_64_levels_fails_alone(node):
    deep = json.dumps(_new(INDICATOR))[:-1] + ', "x_deep": ' + "[" * 200 + "]" * 200 + "}"
    failure = _post_with_neighbour(node, deep)
    assert "deeper than 64 levels" in failure["message"]


def test_a_next_cursor_holding_deep_json_is_a_400(node):
    # 5,000 levels: past Python's recursion limit, and within limits.request_line_bytes (a 50,000-level
    # cursor is a 414 from the HTTP server before the app sees it).
    cursor = base64.urlsafe_b64encode(("[" * 5_000 + "]" * 5_000).encode()).decode()
    response = node.session().get(node.objects_url(), params={"next": cursor})
    _assert_taxii_error(response, 400)
    too_long = base64.urlsafe_b64encode(("[" * 50_000 + "]" * 50_000).encode()).decode()
    _assert_taxii_error(node.session().get(node.objects_url(), params={"next": too_long}), 414)
    forged = base64.urlsafe_b64encode(b'["0000000000000000", 99999999999999999999999]').decode()
    _assert_taxii_error(node.session().get(node.objects_url(), params={"next": forged}), 400)


# -- lone UTF-16 surrogates and other invalid Unicode --------------------------------------------------------


@pytest.mark.parametrize("where", ["value", "key"])
def test_a_lone_surrogate_fails_its_object_and_never_reaches_an_answer(node, where):
    bad = _new(INDICATOR)
    text = json.dumps(bad)[:-1] + (', "name": "bad \\ud800"}' if where == "value" else ', "x_\\udfff": 1}')
    failure = _post_with_neighbour(node, text)
    assert "lone UTF-16 surrogate" in failure["message"]
    assert bad["id"] not in _stored_ids(node)


def test_a_body_that_is_not_utf8_is_a_400(node):
    body = json.dumps({"objects": [_new(INDICATOR)]}).encode("utf-16")
    assert "UTF-8" in _assert_taxii_error(_post_body(node, body), 400)["description"]
    _assert_taxii_error(_post_body(node, b'{"objects": [{"id": "\xff\xfe"}]}'), 400)


# -- null or wrong types for common properties ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("type", None),
        ("type", 5),
        ("id", None),
        ("id", ["indicator--x"]),
        ("spec_version", None),
        ("spec_version", 2.1),
        ("created", None),
        ("created", {}),
        ("modified", 1),
        ("modified", "2016-13-45T99:99:99Z"),
        ("extensions", "x"),
        ("extensions", [1]),
        ("extensions", {"extension-definition--" + str(uuid.uuid4()): None}),
        ("object_marking_refs", "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
        ("object_marking_refs", [None]),
        ("granular_markings", [{"marking_ref": 5, "selectors": ["name"]}]),
        ("granular_markings", [{"selectors": None}]),
        ("created_by_ref", 7),
        ("labels", "malicious-activity"),
        ("external_references", [1]),
        ("pattern", None),
        ("valid_from", []),
        ("labels", []),
        ("name", None),
    ],
)
def test_a_common_property_of_the_wrong_type_fails_its_object_alone(node, name, value):
    bad = _new(INDICATOR)
    bad[name] = value
    failure = _post_with_neighbour(node, json.dumps(bad))
    assert failure["message"]


def test_a_custom_object_gets_its_common_properties_checked_too(node):
    custom = {"type": "x-acme-note", "spec_version": "2.1", "id": f"x-acme-note--{uuid.uuid4()}"}
    failure = _post_with_neighbour(node, json.dumps({**custom, "object_marking_refs": [42]}))
    assert "'object_marking_refs' must be a list of marking-definition identifiers" in failure["message"]
    assert node.post([custom])["success_count"] == 1  # a well-formed custom object is fine


# -- indicator patterns: empty and pathological -----------------------------------------------------------

TERM = "[ipv4-addr:value = '198.51.100.1']"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", ""),
        (" OR ".join([TERM] * 150), "operators"),
        (" OR ".join([TERM] * 5000), "characters"),
        ("(" * 5000 + TERM + ")" * 5000, "nests brackets"),
        ("[ipv4-addr:value = '" + "a" * 500_000 + "']", "characters"),
    ],
)
def test_pathological_patterns_are_refused_quickly(node, pattern, reason):
    started = time.monotonic()
    failure = _post_with_neighbour(node, json.dumps(_new(INDICATOR, pattern=pattern)))
    assert time.monotonic() - started < 10  # the parser alone needs seconds or overflows the stack on these
    assert reason in failure["message"]


# -- numbers outside JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 5000])
def test_numbers_outside_json_fail_their_object_and_answers_stay_strict_json(node, literal):
    text = json.dumps(_new(MALWARE))[:-1] + f', "x_score": {literal}' + "}"
    failure = _post_with_neighbour(node, text)
    assert "not a JSON number" in failure["message"]
    _stored_ids(node)  # parses every stored object strictly


def test_integers_beyond_64_bits_are_stored_and_served_exactly(node):
    """RFC 8259 §6 sets no size on an integer: each is kept as written, whether the envelope is read by the
    fast reader (a clean text) or by the strict one (another object in it holds a lone surrogate)."""
    counts = [2**64, -(2**63) - 1, 10**300 + 7]
    clean, mixed = _new(MALWARE, x_counts=counts), _new(MALWARE, x_counts=counts)
    assert _post_body(node, json.dumps({"objects": [clean]})).json()["success_count"] == 1
    body = (
        '{"objects": ['
        + json.dumps(mixed)
        + ","
        + json.dumps(_new(INDICATOR))[:-1]
        + ', "name": "\\udc00"}]}'
    )
    assert _post_body(node, body).json()["success_count"] == 1
    for obj in (clean, mixed):
        served = node.session("soc").get(node.objects_url() + obj["id"] + "/").json()["objects"][0]
        assert served["x_counts"] == counts


def test_a_body_with_a_byte_order_mark_is_read_as_utf8(node):
    """RFC 8259 §8.1: a reader may ignore a leading byte order mark; some Windows tools write one."""
    obj = _new(INDICATOR, name="Індикатор \U0001f600")
    response = _post_body(node, b"\xef\xbb\xbf" + json.dumps({"objects": [obj]}, ensure_ascii=False).encode())
    assert response.status_code == 202 and response.json()["success_count"] == 1, response.text[:300]
    served = node.session("soc").get(node.objects_url() + obj["id"] + "/").json()["objects"][0]
    assert served["name"] == obj["name"]


_TRICKY_VALUES = [
    '"\\ud83d\\ude00 and \\u00e9"',  # a surrogate pair written as escapes is one character
    '"\u00e9\u4e2d \\"quoted\\" \\\\ud800 \\u0000"',  # raw UTF-8, escapes, an escaped backslash
    "[0.1, 1e-7, -0.0, 1.7976931348623157e308, 5e-324, 123456789012345678901234567890]",
    "1e400",
    "NaN",
    '"\\ud800"',
    '{"k\\udfff": 1}',
    "[" * 70 + "]" * 70,
    '{"created": "2016-02-30T00:00:00Z"}',
]


@pytest.mark.parametrize("value", _TRICKY_VALUES)
def test_the_fast_and_the_strict_reader_judge_and_store_an_envelope_alike(value):
    """What is stored, and why an object is refused, does not depend on which reader took the envelope: the
    fast one (bytes: msgspec, then only the nesting checked) or the strict one (the json module, every
    string and number checked)."""
    good = json.dumps(_new(MALWARE))
    text = '{"objects": [' + good + "," + good[:-1] + f', "x_value": {value}' + "}]}"

    def verdicts(body):
        objects, clean = json_input.loads_screened(body)
        return [
            validation.screen_object(obj, n, clean_text=clean) or validation.check_object(obj, True)
            for n, obj in enumerate(objects["objects"])
        ]

    fast = verdicts(text.encode("utf-8", "surrogatepass"))
    strict = verdicts(text)  # text is read by the json module, and non-ASCII text is never taken as clean
    assert fast == strict
    assert isinstance(fast[0], NewObject)


# -- type and id prefix disagree -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"id": f"malware--{uuid.uuid4()}"},
        {"type": "x-custom-thing", "id": f"x-other-thing--{uuid.uuid4()}"},
        {"type": "X-UPPER", "id": f"X-UPPER--{uuid.uuid4()}"},
        {"id": "indicator--not-a-uuid"},
        {"id": f"indicator--{uuid.uuid4()}--extra"},
    ],
)
def test_an_object_whose_type_does_not_match_its_id_fails_alone(node, changes):
    failure = _post_with_neighbour(node, json.dumps({**INDICATOR, **changes}))
    assert failure["message"]


# -- huge strings and the size of a page --------------------------------------------------------------------


def test_huge_strings_fit_under_max_content_length_or_get_413(node_factory):
    node = node_factory(max_content_length=4 * 1024 * 1024)
    large = _new(MALWARE, description="d" * 3_000_000)
    assert node.post([large])["success_count"] == 1
    too_large = _new(MALWARE, description="d" * 5_000_000)
    _assert_taxii_error(_post_body(node, json.dumps({"objects": [too_large]})), 413)
    long_id = {**MALWARE, "id": "malware--" + "a" * 100_000}
    assert _post_with_neighbour(node, json.dumps(long_id))["message"].startswith(
        "object #1 has no valid 'id'"
    )


def test_a_page_is_cut_by_size_and_next_continues_it(node_factory):
    node = node_factory(max_page_bytes=200_000)
    objects = [_new(MALWARE, description=f"{index} " + "d" * 60_000) for index in range(10)]
    node.post(objects)
    first = node.session("soc").get(node.objects_url()).json()
    assert first["more"] is True and 1 <= len(first["objects"]) <= 3
    seen, params = [o["id"] for o in first["objects"]], {"next": first["next"]}
    for _ in range(20):
        page = node.session("soc").get(node.objects_url(), params=params).json()
        seen += [o["id"] for o in page.get("objects", [])]
        if not page["more"]:
            break
        params["next"] = page["next"]
    assert seen == [o["id"] for o in objects]
    single = node_factory(name="tiny-pages", max_page_bytes=10)
    single.post(objects[:2])
    page = single.session("soc").get(single.objects_url()).json()
    assert len(page["objects"]) == 1 and page["more"] is True  # an object larger than the budget comes alone


# -- validation work per envelope is bounded --------------------------------------------------------------


def test_validation_stops_at_the_time_budget_and_says_what_to_resend(node_factory):
    node = node_factory(max_validation_seconds=0.05)
    indicators = [
        _new(INDICATOR, pattern=f"[ipv4-addr:value = '10.0.{i // 250}.{i % 250}'] AND " + TERM)
        for i in range(2000)
    ]
    started = time.monotonic()
    status = node.post(indicators)
    assert time.monotonic() - started < 30
    assert status["success_count"] + status["failure_count"] == 2000
    assert status["failure_count"] > 0
    assert "took too long to validate" in status["failures"][-1]["message"]
    again = node_factory(name="patient").post(indicators[:50])
    assert again["success_count"] == 50


# -- URL parameters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"match[type]": ",".join(f"x-type-{i}" for i in range(101))},
        {"match[id]": ",".join(f"indicator--{uuid.uuid4()}" for _ in range(101))},
        {"limit": "1" * 5000},
        {"added_after": "2016-02-30T00:00:00Z"},
        {"added_after": "\x00"},
        {"next": "A" * 5000},
    ],
)
def test_hostile_url_parameters_get_400(node, params):
    _assert_taxii_error(node.session().get(node.objects_url(), params=params), 400)


# -- framing and paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", "+5", "5, 5"])
def test_a_content_length_that_is_not_a_number_of_bytes_is_a_400(node, length):
    import socket

    host, port = node.running.server.bind_addr[:2]
    credentials = base64.b64encode(f"cert:{PASSWORDS['cert']}".encode()).decode()
    request = (
        f"POST /alliance/collections/{COLLECTION_ID}/objects/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Basic {credentials}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n" + '{"objects": []}'
    ).encode()
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert json.loads(body)["http_status"] == "400"


@pytest.mark.parametrize(
    "path",
    ["taxii2", "alliance", "alliance/collections", f"alliance/collections/{COLLECTION_ID}/objects"],
)
def test_a_path_without_its_trailing_slash_names_the_same_resource(node, path):
    response = node.session().get(node.url + path, allow_redirects=False)
    assert response.status_code == 200 and response.headers["Content-Type"] == TAXII
    assert response.json() == node.session().get(node.url + path + "/").json()


@pytest.mark.parametrize("path", ["favicon.ico", "taxii", "alliance/x/y/z/", "taxii2/x/"])
def test_an_unknown_path_is_a_taxii_404_that_points_to_discovery(node, path):
    error = _assert_taxii_error(node.session().get(node.url + path), 404)
    assert "/taxii2/" in error["description"]
