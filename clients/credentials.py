"""Where a CERT or SOC tool gets its user name and password: a credentials file, the environment, or a prompt.
Never the command line alone, where shell history and `ps` would keep the password."""

import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

USER_VARIABLE, PASSWORD_VARIABLE = "TAXII_FED_USER", "TAXII_FED_PASSWORD"


class CredentialsError(Exception):
    """No usable credentials; the message says where they can come from."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


def load_credentials(credentials_file: str | None, user: str | None = None) -> Credentials:
    """From `--credentials FILE` (YAML with `user` and `password`), else TAXII_FED_USER/TAXII_FED_PASSWORD,
    else a prompt on a terminal. `user` (from --user) names the account; the password never comes from it."""
    if credentials_file:
        try:
            data = yaml.safe_load(Path(credentials_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise CredentialsError(f"{credentials_file}: cannot read credentials: {error}") from None
        if not isinstance(data, dict) or not data.get("user") or not data.get("password"):
            raise CredentialsError(f"{credentials_file}: needs 'user' and 'password' keys")
        return Credentials(str(data["user"]), str(data["password"]))
    user = user or os.environ.get(USER_VARIABLE)
    password = os.environ.get(PASSWORD_VARIABLE)
    if user and password:
        return Credentials(user, password)
    if sys.stdin.isatty():
        user = user or input("user: ")
        return Credentials(user, getpass.getpass(f"password for {user}: "))
    raise CredentialsError(
        f"no credentials: pass --credentials FILE, or set {USER_VARIABLE} and "
        f"{PASSWORD_VARIABLE}, or run on a terminal to be asked"
    )
