"""One federation link: pull what is new at the source, apply policy, post to the destination, and only
then advance the checkpoint (DESIGN.md, "Federation: the rules"). A crash anywhere repeats work at an
idempotent destination; it never skips an object."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from taxii_federation.clients.federation.config import Agreement, Member
from taxii_federation.clients.federation.policy import (
    TLP_MARKINGS,
    decide,
    decide_by_tlp,
    marking_refs,
    tlp_of,
)
from taxii_federation.clients.federation.state import FederationState
from taxii_federation.clients.taxii import RemoteCollection, SourcePage, encode_object

REASON_REFUSED = "refused by the destination"
# TLP 1.0 definitions are built into STIX 2.1: every node knows them without receiving them.
_BUILT_IN_MARKINGS = frozenset(list(TLP_MARKINGS)[:4])


def link_source(link_name: str | None) -> str | None:
    """The node a link reads from, from its name ('hub->ro:alliance-indicators' -> 'hub')."""
    return link_name.split("->", 1)[0] if link_name and "->" in link_name else None


def link_name(source: str, destination: str, collection: str) -> str:
    """How a link is named in the state file, in provenance (X-TAXII-Fed-Link) and on the dashboard."""
    return f"{source}->{destination}:{collection}"


@dataclass(frozen=True)
class Link:
    source: Member
    destination: Member
    agreement: Agreement

    @property
    def name(self) -> str:
        return link_name(self.source.name, self.destination.name, self.agreement.collection)


@dataclass
class LinkRun:
    """What one pass over a link did."""

    seen: int = 0
    stored: int = 0
    already_present: int = 0
    echoes: int = 0
    held: Counter = field(default_factory=Counter)
    # The checkpoint after the pass: the source held nothing after it when the pass last read it.
    checkpoint: str | None = None


class Mirror:
    """`source`: the links that read one collection share its RemoteCollection, and so their page reads
    (clients/taxii.py); each still applies its own policy and keeps its own checkpoint."""

    def __init__(
        self,
        link: Link,
        state: FederationState,
        page_size: int = 1000,
        source: RemoteCollection | None = None,
    ):
        self.link, self.state, self.page_size = link, state, page_size
        self.source = source or RemoteCollection(link.source, link.agreement.collection)
        self.destination = RemoteCollection(link.destination, link.agreement.collection)
        self._markings_delivered: set[str] = set()

    def run_once(self) -> LinkRun:
        """Mirror everything the source added since the checkpoint."""
        checkpoint = self.state.checkpoint(self.link.name)
        checkpoint_each_page = self.link.source.server == "taxii-fed"
        total, walk_held, last_seen = LinkRun(), Counter(), None
        for page in self.source.pages(checkpoint, self.page_size):
            run = self._mirror_page(page)
            total.seen += run.seen
            total.stored += run.stored
            total.already_present += run.already_present
            total.echoes += run.echoes
            total.held.update(run.held)
            last_seen = page.date_added_last or last_seen
            if checkpoint_each_page:
                self.state.advance(
                    self.link.name,
                    page.date_added_last,
                    run.seen,
                    run.stored,
                    run.held,
                    caught_up=not page.more,
                )
            else:
                walk_held.update(run.held)
        if not checkpoint_each_page:
            # Only a full walk proves nothing with the same date_added is still unread.
            self.state.advance(self.link.name, last_seen, total.seen, total.stored, walk_held, caught_up=True)
        total.checkpoint = last_seen or checkpoint
        return total

    def _mirror_page(self, page: SourcePage) -> LinkRun:
        run = LinkRun(seen=len(page.objects))
        by_origin: dict[str, list[int]] = defaultdict(list)  # positions in the page
        destination = self.link.destination.name
        tlps = page.derived("tlp", _tlps)
        entries = zip(page.objects, page.origins, page.links, strict=True)
        for position, (obj, origin, via) in enumerate(entries):
            origin = origin or self.link.source.name
            if destination in (origin, link_source(via)):
                run.echoes += 1  # it came from there: hub-and-spoke mirroring must not loop
                continue
            verdict = decide_by_tlp(tlps[position], obj.get("type"), self.link.agreement)
            if verdict.send:
                by_origin[origin].append(position)
            else:
                run.held[verdict.reason] += 1
        encoded = page.encoded() if by_origin else []
        for origin, positions in by_origin.items():
            objects = [page.objects[p] for p in positions]
            refs = page.derived("marking_refs", _marking_refs)
            definitions = self._missing_markings(objects, [refs[p] for p in positions])
            result = self.destination.post(
                definitions + objects,
                origin,
                self.link.name,
                validated_upstream=self.link.source.server == "taxii-fed",
                encoded=[encode_object(d) for d in definitions] + [encoded[p] for p in positions],
            )
            self._markings_delivered.update(definition["id"] for definition in definitions)
            run.stored += result.stored
            run.already_present += result.already_present
            for failure in result.failures:
                run.held[f"{REASON_REFUSED}: {str(failure.get('message', ''))[:120]}"] += 1
        return run

    def _missing_markings(self, objects: list[dict], refs: list[set[str]]) -> list[dict]:
        """Marking definitions travel with the objects that reference them (`refs`: theirs), ahead of them."""
        present = {obj["id"] for obj in objects if obj.get("type") == "marking-definition"}
        wanted = set().union(*refs) - present
        wanted -= _BUILT_IN_MARKINGS | self._markings_delivered
        definitions = [self.source.get_object(marking_id) for marking_id in sorted(wanted)]
        return [d for d in definitions if d is not None and decide(d, self.link.agreement).send]


def _tlps(objects: list[dict]) -> list[str | None]:
    return [tlp_of(obj) for obj in objects]


def _marking_refs(objects: list[dict]) -> list[set[str]]:
    return [marking_refs(obj) for obj in objects]
