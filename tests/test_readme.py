"""The README's SOC example works against a real node, as a new user would paste it."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PASSWORDS, load_bundle

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_taxii2_client_example_lists_the_indicators_and_malware(node):
    apt1 = load_bundle("oasis-examples/apt1.json")
    node.post(apt1)
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    example = (
        example.replace("http://127.0.0.1:6101/", node.url)
        .replace('"soc-ua"', '"soc"')
        .replace('"demo-soc-ua"', f'"{PASSWORDS["soc"]}"')
    )
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [o for o in apt1 if o["type"] in ("indicator", "malware")]
    assert result.stdout.splitlines()[-1] == f"{len(expected)} objects"
    assert (
        f"indicator {expected[0]['id']}" in result.stdout or f"malware {expected[0]['id']}" in result.stdout
    )
