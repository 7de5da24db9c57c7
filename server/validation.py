"""STIX 2.1 validation of the objects of a POSTed envelope, one verdict per object.

Every object is checked on its own with the `stix2` library, so one bad object never spoils its
neighbours, and each refusal carries a message a CERT analyst can act on.
"""

import logging
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import stix2
import stix2.exceptions

from taxii_federation.server import stix_patterns
from taxii_federation.server.json_input import problem_in
from taxii_federation.server.json_output import ENCODE_ERRORS, json_text
from taxii_federation.server.storage.base import NewObject
from taxii_federation.server.timestamps import TimestampError, parse_micros

stix_patterns.install()
log = logging.getLogger(__name__)

# STIX 2.1 §2.9: an identifier is `<type>--<UUID>`; §3.1: a type is 3-250 characters of a-z, 0-9 and
# hyphens, with no two hyphens in a row.
_STIX_TYPE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_STIX_ID = re.compile(rf"^([a-z0-9][a-z0-9-]*[a-z0-9])--{_UUID}$")
_SHOWN = 80  # how much of a hostile value a refusal quotes back


@dataclass(frozen=True)
class Refusal:
    """An object that was not stored: its id and version when it had them, and why."""

    id: str | None
    version: str | None
    message: str


def version_of(obj: dict) -> int | None:
    """The version key of a STIX object: `modified`, else `created`, else none (TAXII 2.1 §3.4.3)."""
    stamp = obj.get("modified") or obj.get("created")
    return parse_micros(stamp) if stamp else None


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    # stix2 speaks to programmers; the analyst reading a status cannot use a decorator.
    text = text.replace(" For custom types, use the CustomObject decorator.", "")
    return text.replace("\n", " ")[:1000]


def _is_identifier(value: object) -> bool:
    return isinstance(value, str) and _STIX_ID.match(value) is not None


def _list_problem(obj: dict, name: str, item_ok, expected: str) -> str | None:
    value = obj[name]
    if not isinstance(value, list) or not value:
        return f"'{name}' must be a non-empty list of {expected}"
    for item in value:
        if not item_ok(item):
            return f"'{name}' must be a list of {expected}, got an item {_shown(item)}"
    return None


def _granular_marking_ok(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    selectors = item.get("selectors")
    reference_ok = _is_identifier(item.get("marking_ref")) or isinstance(item.get("lang"), str)
    return reference_ok and isinstance(selectors, list) and all(isinstance(s, str) for s in selectors)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


# The common properties that are lists: what each item must be, and how a refusal names it.
_LIST_PROPERTIES = {
    "object_marking_refs": (_is_identifier, "marking-definition identifiers"),
    "granular_markings": (_granular_marking_ok, "granular markings (selectors and a marking_ref)"),
    "labels": (lambda item: isinstance(item, str), "strings"),
    "external_references": (lambda item: isinstance(item, dict), "external references (objects)"),
}


def _common_property_problem(obj: dict) -> str | None:
    """STIX 2.1 §3.2's common properties, checked for every object: stix2 checks them only for the types it
    knows, and hands custom objects (x-mitre-*, any `x-` type) through as they came."""
    for name, value in obj.items():
        # stix2 drops null and empty-list properties before it validates, so an object stored as it came
        # would not be the object that was checked; STIX has no null, and empty lists are prohibited.
        if value is None:
            return f"'{name}' is null; STIX has no null values: leave the property out"
        if type(value) is list and not value:
            return f"'{name}' is an empty list; STIX 2.1 prohibits empty lists: leave the property out"
    object_type = obj.get("type")
    if not isinstance(object_type, str) or not _STIX_TYPE.match(object_type):
        return f"'type' must be 3-250 characters of a-z, 0-9 and '-', got {_shown(object_type)}"
    if object_type != obj["id"].partition("--")[0]:
        return f"'type' {object_type!r} does not match the id"
    for name in ("created", "modified"):
        if name in obj:
            try:
                parse_micros(obj[name])
            except TimestampError as error:
                return f"'{name}': {error}"
    for name, (item_ok, expected) in _LIST_PROPERTIES.items():
        if name in obj and (problem := _list_problem(obj, name, item_ok, expected)):
            return problem
    if "created_by_ref" in obj and not _is_identifier(obj["created_by_ref"]):
        return f"'created_by_ref' must be an identifier, got {_shown(obj['created_by_ref'])}"
    extensions = obj.get("extensions", {})
    if not isinstance(extensions, dict) or not all(isinstance(v, dict) for v in extensions.values()):
        return "'extensions' must be an object whose values are objects"
    return None


def _version_text(obj: dict) -> str | None:
    """The version a refusal reports: only a short, plain text from the object is echoed back."""
    stamp = obj.get("modified") or obj.get("created")
    return stamp if isinstance(stamp, str) and len(stamp) <= 40 and stamp.isascii() else None


def screen_object(
    obj: object, position: int, stix_versions: tuple[str, ...] = ("2.1",), clean_text: bool = False
) -> Refusal | None:
    """The cheap checks every object passes before stix2 sees it (or is pickled for a validation worker):
    a JSON object with a valid id, storable JSON (server.json_input; of which only the nesting is left when
    the envelope's text was clean), a STIX version the collection stores, valid common properties."""
    if not isinstance(obj, dict):
        return Refusal(None, None, f"object #{position} is not a JSON object")
    object_id = obj.get("id")
    if not _is_identifier(object_id):
        return Refusal(
            None,
            _version_text(obj),
            f"object #{position} has no valid 'id' (expected '<type>--<UUID>'), got {_shown(object_id)}",
        )
    problem = (
        problem_in(obj, scalars=not clean_text)
        or _spec_version_problem(obj, stix_versions)
        or _common_property_problem(obj)
    )
    return Refusal(object_id, _version_text(obj), f"{object_id}: {problem}") if problem else None


def spec_version_of(obj: dict) -> str:
    """The STIX version of an object. STIX 2.1 §3.2: `spec_version` is required on SDOs, SROs and the
    other objects that have `created`, and optional on SCOs, where leaving it out means 2.1; STIX 2.0
    objects carry none, and every one of them has `created`."""
    if "spec_version" in obj:
        return obj["spec_version"]
    return "2.0" if "created" in obj else "2.1"


def _spec_version_problem(obj: dict, stix_versions: tuple[str, ...]) -> str | None:
    spec_version = spec_version_of(obj)
    if spec_version in stix_versions:
        return None
    accepted = " and ".join(f"STIX {version}" for version in stix_versions)
    if "spec_version" not in obj:
        return (
            f"it has no 'spec_version' but has 'created', so it is a STIX 2.0 object; this collection "
            f"stores {accepted} (a STIX 2.1 object other than an SCO needs spec_version '2.1')"
        )
    return f"'spec_version' {_shown(obj['spec_version'])} is not one this collection stores ({accepted})"


def check_object(obj: dict, allow_custom: bool, validated_upstream: bool = False) -> NewObject | Refusal:
    """The full check of a screened object with stix2, and what to store.

    `validated_upstream`: a federation mirror delivers objects that a taxii-federation node already checked
    with this same function; the screening is then enough, which spares every hop of a federation the full
    stix2 parse."""
    spec_version = spec_version_of(obj)
    if not validated_upstream:
        try:
            stix2.parse(obj, allow_custom=allow_custom, version=spec_version)
        except Exception as error:  # stix2 meets attacker-written objects: any failure refuses only this one
            message = f"{obj['id']}: {_describe(error)}{_custom_hint(error, allow_custom)}"
            return Refusal(obj["id"], _version_text(obj), message)
    try:
        version = version_of(obj)
        body = json_text(obj)
    except (TimestampError, RecursionError, *ENCODE_ERRORS) as error:
        return Refusal(obj["id"], _version_text(obj), f"{obj['id']}: {_describe(error)}")
    stamp = obj.get("modified") or obj.get("created")
    return NewObject(
        obj["id"], obj["type"], spec_version, version, body, stamp if version is not None else None
    )


def validate_object(
    obj: object,
    position: int,
    allow_custom: bool,
    validated_upstream: bool = False,
    stix_versions: tuple[str, ...] = ("2.1",),
) -> NewObject | Refusal:
    """Check one envelope entry; returns what to store, or why it was refused."""
    return screen_object(obj, position, stix_versions) or check_object(obj, allow_custom, validated_upstream)


def _custom_hint(error: Exception, allow_custom: bool) -> str:
    if not allow_custom and isinstance(error, stix2.exceptions.STIXError) and "custom" in str(error).lower():
        return " (this collection refuses custom types and properties)"
    return ""


def _check_slice(
    objects: list[dict], allow_custom: bool, validated_upstream: bool, deadline: float
) -> list[NewObject | Refusal]:
    """Check screened objects until the envelope's time is up; the rest are refused unchecked."""
    verdicts: list[NewObject | Refusal] = []
    for obj in objects:
        if time.monotonic() > deadline:
            message = (
                f"{obj['id']}: not validated: this envelope took too long to validate; "
                "post the objects that were not stored again, in smaller envelopes"
            )
            verdicts.append(Refusal(obj["id"], _version_text(obj), message))
        else:
            verdicts.append(check_object(obj, allow_custom, validated_upstream))
    return verdicts


def _exit_with_parent(parent_pid: int) -> None:
    """Runs in each worker: a server killed without ceremony (SIGKILL, OOM) must not leave workers behind."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class EnvelopeValidator:
    """Validates the objects of an envelope, spreading large envelopes over worker processes.

    stix2 is pure Python and holds the GIL, so threads cannot share the work; a process pool lets a CERT's
    thousand-object envelope use every core. The pool starts on the first large envelope."""

    PARALLEL_FROM = 256

    def __init__(self, workers: int):
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def validate(
        self,
        objects: list,
        allow_custom: bool,
        validated_upstream: bool = False,
        seconds: float = 60,
        stix_versions: tuple[str, ...] = ("2.1",),
        clean_text: bool = False,
    ) -> list[NewObject | Refusal]:
        """One verdict per object, in order. Checking stops after `seconds` (CLOCK_MONOTONIC is shared by the
        worker processes), so no envelope buys more CPU than that. `clean_text`: the objects come from a text
        that json_input.loads_screened found clean."""
        deadline = time.monotonic() + seconds
        verdicts: list = [
            screen_object(obj, position, stix_versions, clean_text) for position, obj in enumerate(objects)
        ]
        to_check = [position for position, verdict in enumerate(verdicts) if verdict is None]
        checked = self._check([objects[p] for p in to_check], allow_custom, validated_upstream, deadline)
        for position, verdict in zip(to_check, checked, strict=True):
            verdicts[position] = verdict
        return verdicts

    def _check(
        self, objects: list[dict], allow_custom: bool, validated_upstream: bool, deadline: float
    ) -> list[NewObject | Refusal]:
        if validated_upstream or self._workers < 2 or len(objects) < self.PARALLEL_FROM:
            return _check_slice(objects, allow_custom, validated_upstream, deadline)
        size = -(-len(objects) // self._workers)
        futures = [
            self._get_pool().submit(_check_slice, objects[s : s + size], allow_custom, False, deadline)
            for s in range(0, len(objects), size)
        ]
        try:
            return [verdict for future in futures for verdict in future.result()]
        except BrokenProcessPool:
            # A worker died (killed, out of memory): check here and start a fresh pool next time.
            log.exception("a validation worker died; validating this envelope in the server process")
            self.close()
            return _check_slice(objects, allow_custom, validated_upstream, deadline)

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: the server is multi-threaded and a forked child could inherit held locks.
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
