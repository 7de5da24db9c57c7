"""Edits of a running node's users take effect without a restart (`taxii-fed users add|passwd|remove`):
on a request, at most once a second, the config file's modification time is compared; a changed file
that is valid replaces the user table, an invalid one is logged and the users in force are kept.
Other keys (storage, listen, catalogue) still need a restart."""

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from taxii_federation.server.config import ConfigError, UserConfig, load_node_config

log = logging.getLogger(__name__)
CHECK_SECONDS = 1.0


class UserReloader:
    def __init__(self, config_path: Path, replace_users: Sequence[Callable[[dict[str, UserConfig]], None]]):
        # Every holder of the user table (passwords, client certificates) takes the same new one.
        self.path, self.replace_users = config_path, replace_users
        self._stamp = self._file_stamp()
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def check(self) -> None:
        if time.monotonic() - self._checked_at < CHECK_SECONDS or not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at = time.monotonic()
            stamp = self._file_stamp()
            if stamp is None or stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                users = load_node_config(self.path).users
            except ConfigError as error:
                log.error("node config changed but is not valid; the users in force are kept: %s", error)
                return
            for replace in self.replace_users:
                replace(users)
            log.info("users of %s reloaded (%d users)", self.path, len(users))
        finally:
            self._lock.release()
