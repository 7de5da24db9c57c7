"""STIX 2.1 validation of the objects of a POSTed envelope, one verdict per object.

Every object is checked on its own with the `stix2` library, so one bad object never spoils its
neighbours, and each refusal carries a message a CERT analyst can act on.
"""

import json
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
from taxii_federation.server.storage.base import NewObject
from taxii_federation.server.timestamps import TimestampError, parse_micros

stix_patterns.install()
log = logging.getLogger(__name__)

_STIX_ID = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9])--[0-9a-fA-F-]{36}$")


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
    return text.replace("\n", " ")


def validate_object(
    obj: object, position: int, allow_custom: bool, validated_upstream: bool = False
) -> NewObject | Refusal:
    """Check one envelope entry; returns what to store, or why it was refused.

    `validated_upstream`: a federation mirror delivers objects that a taxii-federation node already checked
    with this same function; then only the structure is checked (id, type, spec_version, version), which
    spares every hop of a federation the full stix2 parse."""
    if not isinstance(obj, dict):
        return Refusal(None, None, f"object #{position} is not a JSON object")
    object_id = obj.get("id")
    stamp = obj.get("modified") or obj.get("created")
    version_text = stamp if isinstance(stamp, str) else None
    if not isinstance(object_id, str) or not _STIX_ID.match(object_id):
        return Refusal(
            None,
            version_text,
            f"object #{position} has no valid 'id' (expected '<type>--<UUID>'), got {object_id!r}",
        )
    if obj.get("spec_version") != "2.1":
        return Refusal(
            object_id,
            version_text,
            f"{object_id}: 'spec_version' must be '2.1'; this node stores STIX 2.1 only",
        )
    try:
        if not validated_upstream:
            stix2.parse(obj, allow_custom=allow_custom, version="2.1")
        elif obj.get("type") != object_id.partition("--")[0]:
            raise ValueError(f"'type' {obj.get('type')!r} does not match the id")
        version = version_of(obj)
    except (stix2.exceptions.STIXError, TimestampError, ValueError, TypeError, KeyError) as error:
        hint = ""
        if (
            not allow_custom
            and isinstance(error, stix2.exceptions.STIXError)
            and "custom" in str(error).lower()
        ):
            hint = " (this collection refuses custom types and properties)"
        return Refusal(object_id, version_text, f"{object_id}: {_describe(error)}{hint}")
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return NewObject(id=object_id, type=obj["type"], spec_version="2.1", version=version, body=body)


def _validate_slice(
    objects: list, first_position: int, allow_custom: bool, validated_upstream: bool = False
) -> list[NewObject | Refusal]:
    return [
        validate_object(obj, first_position + offset, allow_custom, validated_upstream)
        for offset, obj in enumerate(objects)
    ]


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
        self, objects: list, allow_custom: bool, validated_upstream: bool = False
    ) -> list[NewObject | Refusal]:
        if validated_upstream or self._workers < 2 or len(objects) < self.PARALLEL_FROM:
            return _validate_slice(objects, 0, allow_custom, validated_upstream)
        size = -(-len(objects) // self._workers)
        starts = range(0, len(objects), size)
        futures = [
            self._get_pool().submit(_validate_slice, objects[s : s + size], s, allow_custom) for s in starts
        ]
        try:
            return [verdict for future in futures for verdict in future.result()]
        except BrokenProcessPool:
            # A worker died (killed, out of memory): validate here and start a fresh pool next time.
            log.exception("a validation worker died; validating this envelope in the server process")
            self.close()
            return _validate_slice(objects, 0, allow_custom)

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
