"""A federation whose config files change while it runs (`taxii-fed federation add-member`, an edited
agreement, a new password file): the files are watched, and on a change, or on SIGHUP, the new config is
validated and the running link set rebuilt from it. Checkpoints live in the state file, so rebuilt links
continue where the old ones stopped; an invalid edit is logged and the federation keeps running as it was.

Nothing here depends on how the scheduler runs links: the old `Federation` is stopped, a new one started.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from taxii_federation.clients.federation.config import FederationConfig, load_federation_config
from taxii_federation.server.config import ConfigError

log = logging.getLogger(__name__)
WATCH_SECONDS = 1.0
# An editor (or add-member) writes several files: act once they have been still for this long.
SETTLE_SECONDS = 0.5


def _stamps(files: tuple[Path, ...]) -> tuple:
    stamps = []
    for path in files:
        try:
            stat = os.stat(path)
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), None, None))
    return tuple(stamps)


def without_paused(config: FederationConfig) -> FederationConfig:
    """The config whose links run: agreements without paused members (a paused hub runs no link)."""
    if config.members[config.hub].paused:
        return replace(config, agreements=())
    agreements = tuple(
        replace(agreement, members=tuple(m for m in agreement.members if not config.members[m].paused))
        for agreement in config.agreements
    )
    return replace(config, agreements=agreements)


class FederationConfigFiles:
    """The latest valid config read from a federation file and every file it names; with `demo_pki` (the
    folder of `taxii-fed pki init`), every reading is the demo over TLS (`federation up --tls`)."""

    def __init__(self, path: str | Path, demo_pki: Path | None = None):
        self.path, self.demo_pki = Path(path), demo_pki
        self.config = self._load()
        self.error: str | None = None  # why the files as they are now could not be used
        self._stamps = _stamps(self.config.files)
        self._lock = threading.Lock()

    def changed(self) -> bool:
        return _stamps(self.config.files) != self._stamps

    def reload(self) -> bool:
        """Read the files again; True when that gave a new valid config."""
        with self._lock:
            stamps = _stamps(self.config.files)
            try:
                config = self._load()
            except ConfigError as error:
                self._stamps, self.error = stamps, str(error)
                log.error("federation config not reloaded, the running one is kept: %s", error)
                return False
            self._stamps, self.error = _stamps(config.files), None
            if config == self.config:
                return False
            self.config = config
            return True

    def _load(self) -> FederationConfig:
        config = load_federation_config(self.path)
        if self.demo_pki is None:
            return config
        from taxii_federation.clients.federation.pki import with_demo_tls

        return with_demo_tls(config, self.demo_pki)

    def current(self) -> FederationConfig:
        """The config, read again if a file changed since."""
        if self.changed():
            self.reload()
        return self.config


class ConfigWatcher:
    """Calls `on_change(config)` from its own thread when the files changed and settled, or on SIGHUP."""

    def __init__(self, files: FederationConfigFiles, on_change: Callable[[FederationConfig], None]):
        self.files, self.on_change = files, on_change
        self._stop = threading.Event()
        self._hangup = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="federation config watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hangup(self) -> None:
        """SIGHUP: reload now (the handler only sets a flag; the work happens on the watcher's thread)."""
        self._hangup.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS if not self._hangup.is_set() else 0):
            hangup = self._hangup.is_set()
            if not hangup and not self.files.changed():
                continue
            if not hangup:
                before = _stamps(self.files.config.files)
                if self._stop.wait(SETTLE_SECONDS) or _stamps(self.files.config.files) != before:
                    continue  # still being written: look again on the next round
            self._hangup.clear()
            if self.files.reload():
                try:
                    self.on_change(self.files.config)
                except Exception:  # a failed rebuild must not end the watching
                    log.exception("applying the reloaded federation config failed")
