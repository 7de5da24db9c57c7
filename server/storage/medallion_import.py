"""`taxii-fed storage import-medallion`: load the data file of medallion's memory backend (API roots,
collections, objects, manifests with their date_added, status resources) into a node's storage, and write
the catalogue that serves it under the same API root names and collection ids, so that a CERT moving off
medallion keeps its URLs and its SOC pollers keep their `added_after` cursors.

medallion gives every object of one POST the same date_added; here each version needs its own. Versions that
share a date_added keep their order and are moved back by whole microseconds from that value, so the last of
a group keeps medallion's exact timestamp: a poller whose cursor is that timestamp is sent nothing again.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from taxii_federation.server.storage.base import StatusRecord, Storage, StoredVersion
from taxii_federation.server.timestamps import parse_micros
from taxii_federation.server.validation import spec_version_of, version_of

_DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024


@dataclass
class MedallionImport:
    catalogue: dict
    versions: int = 0
    written: int = 0
    statuses: int = 0
    collections: list[str] = field(default_factory=list)


def _distinct_dates(manifest: list[dict]) -> list[tuple[dict, int]]:
    """Manifest records in date_added order, each with a date_added of its own (see the module doc)."""
    ordered = sorted(enumerate(manifest), key=lambda pair: (parse_micros(pair[1]["date_added"]), pair[0]))
    assigned: list[int] = []
    for _, record in reversed(ordered):
        original = parse_micros(record["date_added"])
        assigned.append(min(original, assigned[-1] - 1) if assigned else original)
    return [(record, date) for (_, record), date in zip(ordered, reversed(assigned), strict=True)]


def _versions(collection: dict) -> list[StoredVersion]:
    by_key = {}
    for obj in collection.get("objects", []):
        obj = {k: v for k, v in obj.items() if k != "_date_added"}  # medallion's in-memory field
        by_key[(obj["id"], obj.get("modified") or obj.get("created"))] = obj
    versions = []
    for record, date_added in _distinct_dates(collection.get("manifest", [])):
        obj = by_key.get((record["id"], record["version"]))
        if obj is None:
            continue  # a manifest record whose object medallion no longer holds
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        version = version_of(obj)
        versions.append(
            StoredVersion(
                obj["id"],
                obj["type"],
                spec_version_of(obj),  # a STIX 2.0 object has no spec_version property
                version if version is not None else date_added,
                date_added,
                body,
                version_text=(obj.get("modified") or obj.get("created")) if version is not None else None,
            )
        )
    return versions


def _status_collection(status: dict, collections: list[dict]) -> str:
    """medallion does not record which collection a status belongs to: find it by the objects it names."""
    named = {
        detail.get("id") for key in ("successes", "failures", "pendings") for detail in status.get(key, [])
    }
    for collection in collections:
        if named & {record["id"] for record in collection.get("manifest", [])}:
            return collection["id"]
    return collections[0]["id"] if collections else ""


def import_medallion(data_file: Path, destination: Storage) -> MedallionImport:
    data = json.loads(Path(data_file).read_text(encoding="utf-8"))
    report = MedallionImport(catalogue={"api_roots": {}})
    for api_root, content in data.items():
        if api_root == "/discovery" or not isinstance(content, dict):
            continue
        information = content.get("information", {})
        collections = content.get("collections", [])
        report.catalogue["api_roots"][api_root] = {
            "title": information.get("title", api_root),
            "description": information.get("description", ""),
            "max_content_length": information.get("max_content_length", _DEFAULT_MAX_CONTENT_LENGTH),
            "collections": [],
        }
        for collection in collections:
            versions = _versions(collection)
            entry = {
                key: collection[key] for key in ("id", "title", "alias", "description") if collection.get(key)
            }
            if any(version.spec_version == "2.0" for version in versions):
                entry["stix_versions"] = ["2.1", "2.0"]  # its STIX 2.0 objects stay readable as such
            report.catalogue["api_roots"][api_root]["collections"].append(entry)
            report.versions += len(versions)
            for start in range(0, len(versions), 1000):
                report.written += destination.import_versions(
                    collection["id"], versions[start : start + 1000]
                )
            report.collections.append(f"{api_root}/{collection['id']}")
        for status in content.get("status", []):
            destination.save_status(_status_record(api_root, status, collections), retention_micros=10**18)
            report.statuses += 1
    default = data.get("/discovery", {}).get("default", "")
    roots = list(report.catalogue["api_roots"])
    chosen = next(
        (root for root in roots if default.rstrip("/").endswith("/" + root)), roots[0] if roots else None
    )
    if chosen:
        report.catalogue["default_api_root"] = chosen
    return report


def _status_record(api_root: str, status: dict, collections: list[dict]) -> StatusRecord:
    return StatusRecord(
        id=status["id"],
        api_root=api_root,
        collection_id=_status_collection(status, collections),
        request_timestamp=parse_micros(status["request_timestamp"]),
        total_count=status.get("total_count", 0),
        successes=status.get("successes", []),
        failures=status.get("failures", []),
        pendings=status.get("pendings", []),
    )


def write_catalogue(catalogue: dict, path: Path) -> None:
    path.write_text(
        "# Written by `taxii-fed storage import-medallion`: the API roots and collections of the\n"
        "# medallion data file, under the same names and ids.\n" + yaml.safe_dump(catalogue, sort_keys=False)
    )
