"""A poller following X-TAXII-Date-Added-Last while four publishers post never misses or repeats."""

import json
import threading
import time
import uuid

import requests

from tests.conftest import PASSWORDS, TAXII, load_bundle


def _indicators(count: int, publisher: int) -> list[dict]:
    template = next(o for o in load_bundle("oasis-examples/apt1.json") if o["type"] == "indicator")
    return [
        dict(template, id=f"indicator--{uuid.uuid4()}", name=f"publisher {publisher} #{n}")
        for n in range(count)
    ]


def test_added_after_polling_sees_every_object_exactly_once_under_concurrent_posts(node):
    batches = {p: [_indicators(25, p) for _ in range(8)] for p in range(4)}
    expected = {o["id"] for p in batches.values() for batch in p for o in batch}
    errors: list[str] = []

    def publish(publisher: int) -> None:
        session = requests.Session()
        session.auth = ("cert", PASSWORDS["cert"])
        for batch in batches[publisher]:
            response = session.post(
                node.objects_url(),
                data=json.dumps({"objects": batch}),
                headers={"Accept": TAXII, "Content-Type": TAXII},
                timeout=60,
            )
            if response.status_code != 202 or response.json()["success_count"] != len(batch):
                errors.append(response.text)

    publishers = [threading.Thread(target=publish, args=(p,)) for p in range(4)]
    for thread in publishers:
        thread.start()
    seen: list[str] = []
    session, added_after = node.session("soc"), None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        publishing = any(thread.is_alive() for thread in publishers)
        params = {"limit": 17, **({"added_after": added_after} if added_after else {})}
        response = session.get(node.objects_url(), params=params)
        assert response.status_code == 200
        objects = response.json().get("objects", [])
        seen.extend(o["id"] for o in objects)
        if objects:
            added_after = response.headers["X-TAXII-Date-Added-Last"]
        elif not publishing:
            break
    for thread in publishers:
        thread.join(timeout=60)
    assert not errors
    assert len(seen) == len(set(seen)), "an object was served twice"
    assert set(seen) == expected
