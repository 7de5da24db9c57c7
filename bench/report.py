"""What every benchmark shares: the machine line, medians and p95, and its section of docs/benchmarks.md."""

import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def machine_line() -> str:
    memory_gib = 0.0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_gib = int(line.split()[1]) / 1024 / 1024
    return (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
        f" {memory_gib:.0f} GiB;"
        f" run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )


def write_section(
    key: str, title: str, report: str, docs: Path = DOCS, heading: str = "# Benchmarks"
) -> None:
    """Replace (or append) this benchmark's section of `docs` (docs/benchmarks.md unless told), leaving the
    others as they are."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = docs.read_text() if docs.exists() else heading + "\n"
    section = f"{start}\n## {title}\n\n{report}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.parent.mkdir(exist_ok=True)
    docs.write_text(text)
