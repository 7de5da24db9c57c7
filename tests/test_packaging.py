"""What `pip install taxii-federation` puts into site-packages: one distinct package, no bare `server` or
`clients` that would collide with other projects', and medallion only as an extra."""

import ast
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", folder, REPO],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("taxii_federation-*.whl")
    return wheel


def test_the_wheel_installs_one_distinct_package_and_medallion_only_as_an_extra(tmp_path):
    with zipfile.ZipFile(_build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
        entry_points = wheel.read(metadata_name.replace("METADATA", "entry_points.txt")).decode()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"taxii_federation"}
    assert "taxii_federation/server/app.py" in names
    assert "taxii_federation/clients/federation/mirror.py" in names
    assert "taxii_federation/clients/federation/templates/federation/dashboard.html" in names
    requirements = metadata.get_all("Requires-Dist")
    runtime = [r for r in requirements if "extra ==" not in r]
    assert not any(r.startswith("medallion") for r in runtime), runtime
    assert any(r.startswith("medallion") and 'extra == "bench"' in r for r in requirements)
    assert "taxii-fed = taxii_federation.clients.cli:main" in entry_points


def test_the_node_never_imports_the_clients_layer():
    offenders = []
    for path in (REPO / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            offenders += [f"{path.relative_to(REPO)}: {m}" for m in modules if "clients" in m.split(".")]
    assert offenders == []
