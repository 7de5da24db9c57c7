"""The peer servers' own virtualenv, `.bench-venv/`: medallion 3.0 and OpenTAXII 0.9.3 from PyPI, whose
dependencies conflict with ours, for the benchmarks (bench/servers.py) and the mixed-federation test.
None of their code is in this repository. Standard library only: `.ci/run` calls it before our venv exists.

    python3 -c 'from tests.peer_venv import ensure_peer_venv; ensure_peer_venv()'
"""

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parents[1] / ".bench-venv"
PEER_PACKAGES = ("medallion==3.0.0", "pymongo", "opentaxii==0.9.3", "gunicorn")


def ensure_peer_venv() -> Path:
    """Create the venv with the peers once; later calls return at once. Returns its bin/ folder."""
    marker = VENV / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(PEER_PACKAGES):
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True)
        marker.write_text(" ".join(PEER_PACKAGES))
    return VENV / "bin"
