"""`taxii-fed publish`: a CERT's bundles into a collection, checked first, sent in envelopes the node accepts,
every status followed to the end, and a truthful summary."""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taxii_federation.clients.taxii import RemoteCollection
from taxii_federation.server.validation import Refusal, validate_object


class BundleError(Exception):
    """A file that is not a STIX bundle, envelope or object; the message names it and says why."""


@dataclass
class Problem:
    source: str
    message: str


@dataclass
class PublishReport:
    read: int = 0
    invalid: list[Problem] = field(default_factory=list)
    sent: int = 0
    stored: int = 0
    already_present: int = 0
    failed: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.failed


def _objects_in(document: object, source: str) -> list:
    # A bundle (with any bundle-level spec_version, as older ATT&CK releases have), an envelope, a list or
    # a single object.
    if isinstance(document, dict) and isinstance(document.get("objects"), list):
        return document["objects"]
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "type" in document:
        return [document]
    raise BundleError(f"{source}: neither a STIX bundle nor a TAXII envelope nor a STIX object")


def read_bundles(paths: list[str]) -> list[tuple[str, object]]:
    """(source, object) for every object in the files, folders (their *.json) and '-' (standard input)."""
    found = []
    for path in paths:
        if path == "-":
            found.append(("<stdin>", sys.stdin.read()))
            continue
        target = Path(path)
        if target.is_dir():
            found.extend((str(f), None) for f in sorted(target.rglob("*.json")))
        elif target.is_file():
            found.append((str(target), None))
        else:
            raise BundleError(f"{path}: no such file or folder")
    objects = []
    for source, text in found:
        try:
            document = json.loads(text if text is not None else Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BundleError(
                f"{source}: not JSON (line {error.lineno} column {error.colno}: {error.msg})"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise BundleError(f"{source}: cannot read: {error}") from None
        objects.extend((source, obj) for obj in _objects_in(document, source))
    return objects


def check(objects: list[tuple[str, object]]) -> tuple[list[dict], list[Problem]]:
    """Validate locally with the node's own validator: every problem is known before anything is sent."""
    valid, problems = [], []
    for position, (source, obj) in enumerate(objects):
        verdict = validate_object(obj, position, allow_custom=True)
        if isinstance(verdict, Refusal):
            problems.append(Problem(source, verdict.message))
        else:
            valid.append(obj)
    return valid, problems


def publish(
    paths: list[str],
    collection: RemoteCollection,
    skip_invalid: bool = False,
    on_envelope: Callable[[int], None] | None = None,
) -> PublishReport:
    if not collection.can_write:
        raise BundleError(f"collection '{collection.alias}' is not writable by '{collection.member.user}'")
    objects = read_bundles(paths)
    valid, problems = check(objects)
    report = PublishReport(read=len(objects), invalid=problems)
    if problems and not skip_invalid:
        return report  # nothing is sent while anything is wrong, unless asked to send the rest
    result = collection.post(valid, on_envelope=on_envelope)
    report.sent = len(valid)
    report.stored, report.already_present, report.failed = (
        result.stored,
        result.already_present,
        result.failures,
    )
    return report


def summary(report: PublishReport) -> str:
    lines = [
        f"read {report.read} objects; sent {report.sent}: {report.stored} stored, "
        f"{report.already_present} already present, {len(report.failed)} failed"
    ]
    if report.invalid:
        lines.append(
            f"{len(report.invalid)} invalid objects"
            + (" (not sent)" if report.sent else "; nothing was sent (--skip-invalid sends the rest)")
        )
        lines.extend(f"  {problem.source}: {problem.message}" for problem in report.invalid)
    lines.extend(
        f"  refused by the node: {failure.get('id')}: {failure.get('message')}" for failure in report.failed
    )
    return "\n".join(lines)
