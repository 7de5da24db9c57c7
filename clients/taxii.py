"""One collection on another node, as the federation sees it: connect by alias, read pages with their
date_added headers, post envelopes and wait for their status. Built on taxii2-client's connection;
paging lives here and only here on the client side.

Several readers may share one RemoteCollection (the links from a hub collection to every member): the
same page asked for at the same time is read, parsed and serialised once for all of them.
"""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec
import requests
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot, Status

TAXII = "application/taxii+json;version=2.1"
PROVENANCE_HEADER = "X-TAXII-Fed-Provenance"
PROVENANCE_PROPERTY = "x_taxii_fed_origins"
LINK_PROPERTY = "x_taxii_fed_links"
ORIGIN_HEADER = "X-TAXII-Fed-Origin"
LINK_HEADER = "X-TAXII-Fed-Link"
VALIDATED_HEADER = "X-TAXII-Fed-Validated"
WAIT_HEADER = "X-TAXII-Fed-Wait"  # a held read: wait at the source until a commit (server/held_reads.py)
NOT_NEWS_HEADER = "X-TAXII-Fed-Not-News"  # nodes and links whose versions do not end a held read
PASSED_HEADER = "X-TAXII-Fed-Passed"  # how far the source looked past what was not news
NEWS_PAGE = 100  # how many versions a held read looks at for news
_STRICT_JSON_READER = msgspec.json.Decoder()
_STRICT_JSON_WRITER = msgspec.json.Encoder()  # compact, integers exact, a tenth of json.dumps's time


@dataclass(frozen=True)
class Endpoint:
    """A TAXII 2.1 node and the account used there."""

    name: str
    url: str  # base URL of the node, ending in '/'
    api_root: str
    user: str
    password: str | None  # None: the account logs in with its client certificate only
    ca_bundle: str | None = None
    # PEM files of a TLS client certificate and its key; read again for every new connection, so
    # replacing them (rotation) needs no restart.
    client_cert: str | None = None
    client_key: str | None = None

    @property
    def api_root_url(self) -> str:
        return f"{self.url}{self.api_root}/"

    @property
    def client_certificate(self) -> tuple[str, str] | str | None:
        """As requests takes it: (cert, key), or one file holding both."""
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return self.client_cert

    def requests_options(self) -> dict:
        """The account as keyword arguments of a requests call: Basic if it has a password, the client
        certificate if it has one, and the CA it trusts."""
        return {
            "auth": (self.user, self.password) if self.password is not None else None,
            "cert": self.client_certificate,
            "verify": self.ca_bundle or True,
        }


class RemoteError(Exception):
    """The other node is unreachable or answered with an error; the link retries later. `unreachable`: no
    connection could be made at all (the node is down), so it is worth watching for its return."""

    def __init__(self, message: str, member: str = "", unreachable: bool = False):
        super().__init__(message)
        self.member, self.unreachable = member, unreachable


@dataclass(frozen=True)
class WaitAnswer:
    news: bool  # the source holds something after the position waited from
    held: bool  # the source held the read; False: it answered at once (busy, or not a taxii-federation node)
    # The date_added up to which everything after the position waited from was not news (echoes).
    passed: str | None = None


@dataclass
class SourcePage:
    """One page as the source sent it. Shared by every reader that asked for it: read-only."""

    objects: list[dict]
    origins: list[str | None]  # the node each object was first published at, when the source says so
    links: list[str | None]  # the federation link that delivered each object to the source, if any
    date_added_last: str | None
    more: bool
    next: str | None = None  # the source's token for the page after this one, if it gives one
    strict_json: bool = False  # the page's text was strict JSON (see read_page_body)
    _derived: dict[str, list] = field(default_factory=dict, repr=False, compare=False)
    _deriving: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def derived(self, name: str, make: Callable[[list[dict]], list]) -> list:
        """What `make` makes of the objects (one item per object), made once for every reader of the page;
        as read-only as the page."""
        with self._deriving:
            if name not in self._derived:
                self._derived[name] = make(self.objects)
            return self._derived[name]

    def encoded(self) -> list[bytes]:
        """Each object as JSON, serialised once for every destination the page is posted to."""
        encode = _STRICT_JSON_WRITER.encode if self.strict_json else encode_object
        return self.derived("encoded", lambda objects: [encode(obj) for obj in objects])


def encode_object(obj: dict) -> bytes:
    """An object as it goes into an envelope, any number in it as it came (NaN stays NaN, for the
    destination to refuse; msgspec would write it as null)."""
    return json.dumps(obj, ensure_ascii=False).encode()


def read_page_body(content: bytes) -> tuple[dict, bool]:
    """A page's JSON, and whether it was strict JSON. msgspec reads strict JSON, integers exact; then every
    number in it is one msgspec writes back unchanged. A lenient server's NaN or 1e400 is refused by msgspec,
    and that page is read and written by the json module, so such a value reaches the destination as it
    came."""
    try:
        return _STRICT_JSON_READER.decode(content), True
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        return json.loads(content), False


@dataclass
class _Read:
    done: threading.Event = field(default_factory=threading.Event)
    page: SourcePage | None = None
    error: BaseException | None = None

    def outcome(self) -> SourcePage:
        if self.error is not None:
            raise self.error
        assert self.page is not None
        return self.page


@dataclass
class _ReadSlot:
    sending: _Read | None = None  # the GET on the wire
    next: _Read | None = None  # the GET that goes once it has answered, for whoever asks meanwhile


class _SharedReads:
    """Identical reads asked for at the same time share one GET. A reader joins only a GET that has not
    been sent yet, so what it gets was read after it asked, exactly as a GET of its own would have been:
    a link's checkpoint and its wake-ups mean the same with shared reads as without. One GET of a kind
    is on the wire at a time; whoever asks meanwhile waits for it, then shares the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple, _ReadSlot] = {}

    def read(self, key: tuple, fetch: Callable[[], SourcePage]) -> SourcePage:
        with self._lock:
            slot = self._slots.setdefault(key, _ReadSlot())
            read, sends = slot.next, slot.next is None
            if sends:
                read = slot.next = _Read()
                ahead = slot.sending
        if not sends:
            read.done.wait()  # bounded: the sender's GET has a timeout
            return read.outcome()
        if ahead is not None:
            ahead.done.wait()
        with self._lock:
            slot.next, slot.sending = None, read
        try:
            read.page = fetch()
        except BaseException as error:  # every reader of this GET hears why it failed
            read.error = error
        finally:
            with self._lock:
                slot.sending = None
                if slot.next is None:
                    del self._slots[key]
            read.done.set()
        return read.outcome()


@dataclass
class PostResult:
    stored: int = 0
    already_present: int = 0
    failures: list[dict] = field(default_factory=list)


def _envelopes(
    objects: list[dict], encoded: list[bytes], max_content_length: int
) -> Iterator[tuple[list[dict], list[bytes], int]]:
    """Split objects into envelopes below the destination's limit; yields (objects, their JSON, size).
    An object too large for any envelope is yielded alone, for the caller to report."""
    budget = int(max_content_length * 0.95) - 64  # room for the envelope wrapper
    batch, texts, size = [], [], 0
    for obj, text in zip(objects, encoded, strict=True):
        if batch and size + len(text) + 1 > budget:
            yield batch, texts, size
            batch, texts, size = [], [], 0
        batch.append(obj)
        texts.append(text)
        size += len(text) + 1
    if batch:
        yield batch, texts, size


class RemoteCollection:
    def __init__(self, member: Endpoint, alias: str, timeout: float = 30):
        self.member, self.alias, self.timeout = member, alias, timeout
        self._conn = _HTTPConnection(
            member.user if member.password else None,
            member.password,
            verify=member.ca_bundle or True,
            version="2.1",
            cert=member.client_certificate,
        )
        if member.ca_bundle:
            # requests lets REQUESTS_CA_BUNDLE override a session's own CA bundle (psf/requests#3829).
            self._conn.session.trust_env = False
        self.url: str | None = None
        self.max_content_length = 0
        self.can_write = False
        self._shared_reads = _SharedReads()

    def connect(self) -> None:
        """Find the collection by alias or id and learn the API root's max_content_length."""
        if self.url:
            return
        try:
            api_root = ApiRoot(self.member.api_root_url, conn=self._conn)
            collections = api_root.collections
            self.max_content_length = api_root.max_content_length
        except requests.HTTPError as error:
            raise self._http_error("GET", self.member.api_root_url, error.response) from None
        except (requests.RequestException, TAXIIServiceException) as error:
            raise self._unreachable(self.member.api_root_url, error) from None
        match = next((c for c in collections if self.alias in (c.alias, c.id)), None)
        if match is None:
            raise RemoteError(
                f"{self.member.name}: API root {self.member.api_root_url} shows user "
                f"'{self.member.user}' no collection '{self.alias}'; check its catalogue and grants",
                self.member.name,
            )
        self.url = match.url
        self.can_write = match.can_write

    def _request(self, method: str, url: str, timeout: float | None = None, **options) -> requests.Response:
        try:
            response = self._conn.session.request(method, url, timeout=timeout or self.timeout, **options)
        except requests.RequestException as error:
            raise self._unreachable(url, error) from None
        if response.status_code >= 400:
            raise self._http_error(method, url, response)
        return response

    def _unreachable(self, url: str, error: Exception) -> RemoteError:
        # A refused or reset connection means the node is down; a timeout may be a node that is only slow.
        down = isinstance(error, requests.ConnectionError) and not isinstance(
            error, requests.exceptions.SSLError | requests.exceptions.ConnectTimeout
        )
        reason = "connection refused" if down else str(error)
        if isinstance(error, requests.exceptions.SSLError) and "alert" in str(error):
            reason = (
                f"the node refused the TLS connection ({error}); check the client certificate and that the "
                "node's tls.client_ca trusts its issuer"
            )
        elif isinstance(error, requests.exceptions.SSLError):
            reason = f"TLS verification failed ({error}); pass the node's CA with --ca-bundle"
        return RemoteError(f"{self.member.name}: cannot reach {url}: {reason}", self.member.name, down)

    def _http_error(self, method: str, url: str, response: requests.Response | None) -> RemoteError:
        if response is None:
            return RemoteError(f"{self.member.name}: {method} {url} failed", self.member.name)
        try:
            detail = response.json().get("description") or response.json().get("title")
        except ValueError:
            detail = response.text[:200]
        if response.status_code == 401:
            return RemoteError(
                f"{self.member.name}: the node refused the credentials of user '{self.member.user}' "
                f"(401: {detail})",
                self.member.name,
            )
        return RemoteError(
            f"{self.member.name}: {method} {url} answered {response.status_code}: {detail}", self.member.name
        )

    def pages(
        self, added_after: str | None, page_size: int, types: tuple[str, ...] = ()
    ) -> Iterator[SourcePage]:
        """Every version added after `added_after` (of `types`, if given), in date_added order, by `next`."""
        self.connect()
        params: dict = {"limit": page_size, "match[version]": "all"}
        if types:
            params["match[type]"] = ",".join(types)
        if added_after:
            params["added_after"] = added_after
        for _ in range(1_000_000):
            page = self._shared_reads.read(
                tuple(sorted(params.items())), lambda: self._read_page(dict(params))
            )
            yield page
            if not page.more:
                return
            if page.next:
                params["next"] = page.next
            else:  # a server that pages without `next`: continue after the last date_added
                params["added_after"] = page.date_added_last

    def _read_page(self, params: dict) -> SourcePage:
        headers = {"Accept": TAXII, PROVENANCE_HEADER: "include"}
        response = self._request("GET", self.url + "objects/", params=params, headers=headers)
        body, strict_json = read_page_body(response.content)
        objects = body.get("objects", [])
        origins = body.get(PROVENANCE_PROPERTY) or [None] * len(objects)
        links = body.get(LINK_PROPERTY) or [None] * len(objects)
        more = bool(body.get("more")) and bool(objects)
        last = response.headers.get("X-TAXII-Date-Added-Last")
        if more and not body.get("next") and not last:
            raise RemoteError(
                f"{self.member.name}: GET {self.url}objects/ says there is more but gives neither 'next'"
                " nor X-TAXII-Date-Added-Last to continue from",
                self.member.name,
            )
        return SourcePage(objects, origins, links, last, more, body.get("next"), strict_json)

    def wait_for_news(
        self, added_after: str | None, seconds: float, not_news: frozenset[str] = frozenset()
    ) -> WaitAnswer:
        """Ask the source to hold a read until something is added after `added_after` (a held read,
        server/held_reads.py), other than versions first published at, or delivered by, the nodes and
        links named `not_news`; a source that does not hold reads answers at once."""
        self.connect()
        params: dict = {"limit": NEWS_PAGE, "match[version]": "all"}
        if added_after:
            params["added_after"] = added_after
        headers = {"Accept": TAXII, WAIT_HEADER: f"{seconds:g}"}
        if not_news:
            headers[NOT_NEWS_HEADER] = ", ".join(sorted(not_news))
        response = self._request(
            "GET", self.url + "objects/", timeout=seconds + self.timeout, params=params, headers=headers
        )
        news = bool(response.json().get("objects"))
        held = float(response.headers.get(WAIT_HEADER) or 0) > 0
        return WaitAnswer(news, held, response.headers.get(PASSED_HEADER))

    def reachable(self) -> bool:
        """Whether the node answers HTTP at all (its API root): a cheap probe for a node that was down."""
        try:
            self._conn.session.get(self.member.api_root_url, headers={"Accept": TAXII}, timeout=2)
        except requests.RequestException:
            return False
        return True

    def first_date_added(self, added_after: str | None) -> str | None:
        """The date_added of the oldest version added after `added_after`, from one manifest record."""
        self.connect()
        params = {
            "limit": 1,
            "match[version]": "all",
            **({"added_after": added_after} if added_after else {}),
        }
        response = self._request("GET", self.url + "manifest/", params=params, headers={"Accept": TAXII})
        records = response.json().get("objects") or []
        return records[0]["date_added"] if records else None

    def get_object(self, object_id: str) -> dict | None:
        self.connect()
        try:
            response = self._request("GET", f"{self.url}objects/{object_id}/", headers={"Accept": TAXII})
        except RemoteError:
            return None
        objects = response.json().get("objects") or []
        return objects[0] if objects else None

    def post(
        self,
        objects: list[dict],
        origin: str | None = None,
        link: str | None = None,
        validated_upstream: bool = False,
        on_envelope: Callable[[int], None] | None = None,
        encoded: list[bytes] | None = None,
    ) -> PostResult:
        """Post in envelopes that fit, waiting for each status to complete. A mirror names the `origin` and
        `link` of the objects, says `validated_upstream` when a taxii-federation node validated them, and
        may pass the objects already `encoded` as JSON (SourcePage.encoded); `on_envelope` hears how many
        objects each finished envelope carried."""
        self.connect()
        result = PostResult()
        if encoded is None:
            encoded = [encode_object(obj) for obj in objects]
        for batch, texts, size in _envelopes(objects, encoded, self.max_content_length):
            if size > self.max_content_length:
                result.failures.extend(
                    {"id": o.get("id"), "message": "larger than the destination's max_content_length"}
                    for o in batch
                )
                continue
            status = self._post_envelope(texts, origin, link, validated_upstream)
            if on_envelope:
                on_envelope(len(batch))
            for success in status.successes:
                if str(success.get("message", "")).startswith("already present"):
                    result.already_present += 1
                else:
                    result.stored += 1
            result.failures.extend(status.failures)
        return result

    def _post_envelope(
        self, texts: list[bytes], origin: str | None, link: str | None, validated_upstream: bool
    ) -> Status:
        data = b'{"objects":[' + b",".join(texts) + b"]}"
        headers = {"Accept": TAXII, "Content-Type": TAXII}
        if origin and link:
            headers.update({ORIGIN_HEADER: origin, LINK_HEADER: link})
        if validated_upstream:
            headers[VALIDATED_HEADER] = "stix2"
        body = self._request("POST", self.url + "objects/", data=data, headers=headers).json()
        status_url = f"{self.member.api_root_url}status/{body['id']}/"
        status = Status(status_url, conn=self._conn, status_info=body)
        if status.status != "complete":
            try:
                status.wait_until_final(poll_interval=0.2, timeout=60)
            except (requests.RequestException, TAXIIServiceException) as error:
                raise RemoteError(f"{self.member.name}: status {status_url} failed: {error}") from None
            if status.status != "complete":
                raise RemoteError(f"{self.member.name}: status {status_url} still pending after 60 s")
        return status
