"""Links that read one collection share its page reads (clients/taxii.py): the hub serves a few GETs per
page whatever the number of members reading it, and each link still sees everything committed before it
asked. Runs on both storage backends."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from taxii_federation.clients.taxii import Endpoint, RemoteCollection, SourcePage, read_page_body
from tests.conftest import PASSWORDS, NodeHandle, load_bundle
from tests.test_observability import OBJECTS_ROUTE, sample, scrape

READERS = 12


def _indicator(name: str) -> dict:
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    return dict(template, id=f"indicator--{uuid.uuid4()}", name=name)


def _remote(node: NodeHandle) -> RemoteCollection:
    """How the federation reads the node: as the mirror account, one RemoteCollection for all links."""
    endpoint = Endpoint("test", node.url, "alliance", "mirror", PASSWORDS["mirror"])
    return RemoteCollection(endpoint, "alliance-indicators")


def _page_reads(node: NodeHandle) -> float:
    samples = scrape(node.url)
    return sample(samples, "taxii_requests_total", endpoint=OBJECTS_ROUTE, method="GET", status="200")


def _read_all(remote: RemoteCollection, after: str | None, page_size: int) -> list[str]:
    return [obj["name"] for page in remote.pages(after, page_size) for obj in page.objects]


def test_links_reading_at_once_share_one_get_per_page_and_each_gets_every_page(node):
    node.post([_indicator(f"object {n}") for n in range(5)])
    remote = _remote(node)
    remote.connect()
    before = _page_reads(node)
    start = threading.Barrier(READERS)

    def read() -> list[str]:
        start.wait(timeout=30)
        return _read_all(remote, None, page_size=2)

    with ThreadPoolExecutor(READERS) as pool:
        results = [future.result(timeout=60) for future in [pool.submit(read) for _ in range(READERS)]]
    assert results == [[f"object {n}" for n in range(5)]] * READERS
    # Three pages, 36 GETs if each reader made its own. A reader that asks while a GET of its page is on
    # the wire shares the next one (never the one on the wire), so readers that drift apart need a few
    # GETs per page: typically 7 to 13 here, never near one per reader.
    gets = _page_reads(node) - before
    assert gets <= READERS * 3 / 2, f"{READERS} readers made {gets:.0f} GETs for 3 pages"


def test_a_shared_read_never_answers_a_link_with_a_page_read_before_it_asked(node):
    node.post([_indicator("checkpoint")])
    remote = _remote(node)
    (first,) = remote.pages(None, 1000)
    after = first.date_added_last
    # A page that takes a while to serve, so that a GET of it is on the wire whenever a commit happens.
    node.post([_indicator(f"bulk {n}") for n in range(500)])
    stop = threading.Event()

    def keep_reading() -> None:  # other links reading the same page all the time
        while not stop.is_set():
            _read_all(remote, after, page_size=1000)

    with ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(keep_reading) for _ in range(4)]
        try:
            for n in range(30):
                node.post([_indicator(f"fresh {n}")])
                # Committed before this read was asked for: it must be in the answer, whatever GET of the
                # same page the other readers have on the wire.
                assert f"fresh {n}" in _read_all(remote, after, page_size=1000)
        finally:
            stop.set()
            for reader in readers:
                reader.result(timeout=60)


def test_a_failed_shared_read_fails_every_link_that_waited_on_it(node):
    remote = _remote(node)
    remote.connect()
    node.stop()
    start = threading.Barrier(4)

    def read() -> str:
        start.wait(timeout=30)
        try:
            _read_all(remote, None, page_size=10)
        except Exception as error:  # noqa: BLE001 - the test looks at what each reader heard
            return type(error).__name__
        return "read"

    with ThreadPoolExecutor(4) as pool:
        outcomes = [future.result(timeout=60) for future in [pool.submit(read) for _ in range(4)]]
    assert outcomes == ["RemoteError"] * 4


def test_a_page_is_posted_on_with_every_number_as_the_source_wrote_it():
    """A page of strict JSON is written back by msgspec (integers exact); a lenient source's NaN or 1e400
    reaches the destination as NaN and Infinity, for it to refuse, never as null."""
    strict_body, strict = read_page_body(
        b'{"objects": [{"id": "x-thing--1", "n": 123456789012345678901234567890}]}'
    )
    lenient_body, lenient = read_page_body(b'{"objects": [{"id": "x-thing--2", "a": NaN, "b": 1e400}]}')
    assert strict and not lenient
    pages = [
        SourcePage(body["objects"], [None], [None], None, False, strict_json=flag)
        for body, flag in ((strict_body, strict), (lenient_body, lenient))
    ]
    assert pages[0].encoded() == [b'{"id":"x-thing--1","n":123456789012345678901234567890}']
    assert pages[1].encoded() == [b'{"id": "x-thing--2", "a": NaN, "b": Infinity}']
