"""`taxii-fed poll`: pull a collection incrementally into a STIX bundle or JSON lines, resuming from a cursor
file (the node's own X-TAXII-Date-Added-Last, never the local clock), and with --follow keep polling."""

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from taxii_federation.clients.taxii import RemoteCollection, RemoteError


@dataclass
class Cursor:
    """Where the last poll stopped: the collection and the last date_added received from it."""

    path: Path | None
    collection_url: str
    added_after: str | None = None

    @classmethod
    def load(cls, path: Path | None, collection_url: str) -> "Cursor":
        if path is None or not path.exists():
            return cls(path, collection_url)
        data = json.loads(path.read_text())
        if data.get("collection_url") != collection_url:
            raise ValueError(
                f"{path} is the cursor of {data.get('collection_url')}, not {collection_url}; "
                "give another --cursor file"
            )
        return cls(path, collection_url, data.get("added_after"))

    def save(self, added_after: str) -> None:
        self.added_after = added_after
        if self.path is None:
            return
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps({"collection_url": self.collection_url, "added_after": added_after}))
        os.replace(temporary, self.path)  # a crash leaves the old cursor or the new one, never half of one


class Output:
    """JSON lines are appended as pages arrive; a bundle file is rewritten whole, old objects kept."""

    def __init__(self, target: str, output_format: str, stream: TextIO | None = None):
        self.target, self.format, self.stream = target, output_format, stream

    def write(self, objects: list[dict]) -> None:
        if not objects:
            return
        if self.format == "jsonl":
            text = "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)
            if self.stream is not None:
                self.stream.write(text)
                self.stream.flush()
            else:
                with open(self.target, "a", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
            return
        if self.stream is not None:
            self.stream.write(json.dumps(_bundle(objects), ensure_ascii=False) + "\n")
            return
        path = Path(self.target)
        existing = json.loads(path.read_text())["objects"] if path.exists() else []
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(_bundle(existing + objects), ensure_ascii=False))
        os.replace(temporary, path)


def _bundle(objects: list[dict]) -> dict:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def poll_once(
    collection: RemoteCollection,
    cursor: Cursor,
    output: Output,
    types: tuple[str, ...] = (),
    on_page: Callable[[int], None] | None = None,
    page_size: int = 1000,
) -> int:
    """Everything added since the cursor; the cursor advances after each page is written."""
    received = 0
    for page in collection.pages(cursor.added_after, page_size, types):
        output.write(page.objects)
        received += len(page.objects)
        if page.date_added_last:
            cursor.save(page.date_added_last)
        if on_page:
            on_page(len(page.objects))
    return received


@dataclass
class FollowReport:
    polls: int = 0
    received: int = 0
    failed_polls: int = 0


def follow(
    collection: RemoteCollection,
    cursor: Cursor,
    output: Output,
    interval: float,
    max_polls: int | None,
    types: tuple[str, ...] = (),
    on_poll: Callable[[int, int, str | None], None] | None = None,
) -> FollowReport:
    """Poll every `interval` seconds, `max_polls` times or until Ctrl-C. A poll that fails (the node is
    restarting, the network is down) is reported to `on_poll` (poll number, new objects, error) and the next
    one tries again from the cursor, which every page written has advanced."""
    report = FollowReport()
    try:
        while max_polls is None or report.polls < max_polls:
            try:
                new, error = poll_once(collection, cursor, output, types), None
            except RemoteError as failure:
                new, error = 0, str(failure)
                report.failed_polls += 1
            report.polls += 1
            report.received += new
            if on_poll:
                on_poll(report.polls, new, error)
            if max_polls is None or report.polls < max_polls:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how following ends; what was received is written and the cursor saved
    return report
