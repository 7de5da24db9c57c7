"""The one place that decides what may cross a federation link (DESIGN.md, "Policy before the wire").

TLP is read from both marking generations: the four TLP 1.0 marking definitions fixed by STIX 2.1
§7.2.1.4 and the five TLP 2.0 definitions of the OASIS extension. An object's level is the highest
of its object markings and granular markings: one RED property keeps the whole object home.
"""

from dataclasses import dataclass

from taxii_federation.clients.federation.config import TLP_LEVELS, Agreement

TLP_MARKINGS = {
    # TLP 1.0 (STIX 2.1 §7.2.1.4)
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "clear",  # white
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
    # TLP 2.0 (extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d)
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "clear",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "green",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "amber",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "amber+strict",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "red",
}
REASON_RED = "tlp:red never leaves its node"
REASON_AMBER_STRICT = "tlp:amber+strict never crosses nodes"
REASON_UNMARKED = "unmarked, and the agreement holds unmarked objects"


@dataclass(frozen=True)
class Verdict:
    send: bool
    reason: str = ""


def marking_refs(obj: dict) -> set[str]:
    """Every marking definition an object points to, through object or granular markings."""
    refs = set(obj.get("object_marking_refs") or [])
    for granular in obj.get("granular_markings") or []:
        if isinstance(granular, dict) and granular.get("marking_ref"):
            refs.add(granular["marking_ref"])
    return refs


def tlp_of(obj: dict) -> str | None:
    """The highest TLP the object carries, or None when it has no TLP marking."""
    levels = [TLP_MARKINGS[ref] for ref in marking_refs(obj) if ref in TLP_MARKINGS]
    return max(levels, key=TLP_LEVELS.__getitem__) if levels else None


def decide(obj: dict, agreement: Agreement) -> Verdict:
    return decide_by_tlp(tlp_of(obj), obj.get("type"), agreement)


def decide_by_tlp(tlp: str | None, object_type: str | None, agreement: Agreement) -> Verdict:
    """`decide` for an object whose TLP (`tlp_of`) is known: the links that read one page share it."""
    if tlp == "red":
        return _HELD_RED
    if tlp == "amber+strict":
        return _HELD_AMBER_STRICT
    if tlp is None:
        # A marking definition is vocabulary, not intelligence: it travels with what references it.
        if object_type == "marking-definition" or agreement.unmarked == "share":
            return _SEND
        return _HELD_UNMARKED
    if TLP_LEVELS[tlp] > agreement.max_level:
        return Verdict(False, f"tlp:{tlp} is above the agreement's max_tlp {agreement.max_tlp}")
    return _SEND


_SEND = Verdict(True)
_HELD_RED = Verdict(False, REASON_RED)
_HELD_AMBER_STRICT = Verdict(False, REASON_AMBER_STRICT)
_HELD_UNMARKED = Verdict(False, REASON_UNMARKED)
