"""A node's JSON-lines log files (the access log and the audit log), rotated by size.

Rotation is the standard library's RotatingFileHandler: `audit.log`, then `audit.log.1` (newest old
file) up to `audit.log.N`. Each node has its own files; handlers are not registered in the logging
hierarchy, so several nodes in one process (the demo, the tests) never share or duplicate a line.
"""

import datetime
import json
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path


def utc_now_text() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLinesLog:
    """One log file; `write` appends one JSON object as one line. Without a path it writes nothing."""

    def __init__(self, path: Path | None, rotate_bytes: int, keep: int):
        self.path = path
        self._handler: logging.Handler | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=rotate_bytes, backupCount=keep, encoding="utf-8"
            )

    def write(self, event: dict) -> None:
        if self._handler is None:
            return
        line = json.dumps({"time": utc_now_text(), **event}, ensure_ascii=False, separators=(",", ":"))
        # handle() takes the handler's lock: lines from concurrent requests never interleave.
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()


def read_events(path: Path, containing: str = "") -> Iterator[dict]:
    """Every event of a log and its rotated files, oldest first; `containing` skips lines without it
    before they are parsed."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    for file in [*rotated, path]:
        if not file.is_file():
            continue
        with file.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if containing in line:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a line cut by a crash mid-write
