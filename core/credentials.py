"""Local credential stores: ``{user: password}`` JSON files readable only by their owner, where ``infra`` keeps
the generated passwords of the local Kafka principals (``<broker home>/users.json``) and of the local
PostgreSQL roles (``<postgres home>/users.json``), and where local processes find their own."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from core.errors import AllianceError


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` as a whole or not at all (a temporary file renamed over it), created with ``mode``
    (by default readable by the owner only: it never exists world-readable, not even for a moment)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)

class CredentialsError(AllianceError):
    """Credentials are missing, unreadable or refused."""


@dataclass(frozen=True)
class CredentialStore:
    """A local service's principals and passwords: a JSON object ``{name: password}``, mode 0600."""

    path: Path

    @classmethod
    def of(cls, home: Path) -> CredentialStore:
        """The store of the local service whose state is in ``home`` (``<home>/users.json``)."""
        return cls(home / "users.json")

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise CredentialsError(f"no credentials at {self.path}: the local service has not been set up yet "
                                   "(python -m infra up)") from None
        except (OSError, ValueError) as exc:
            raise CredentialsError(f"cannot read the credentials at {self.path}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise CredentialsError(f"{self.path} is not a JSON object of user names and passwords")
        return data

    def password(self, name: str) -> SecretStr:
        users = self.load()
        if name not in users:
            raise CredentialsError(f"no user {name!r} in {self.path} (Kafka: python -m infra users add {name})")
        return SecretStr(users[name])

    def save(self, users: dict[str, str]) -> None:
        """Write atomically, readable only by the owner."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(users, indent=1, sort_keys=True).encode())

    def ensure(self, names: list[str]) -> dict[str, str]:
        """The stored users, with a fresh random password for each of ``names`` that has none yet."""
        users = self.load() if self.exists() else {}
        missing = [n for n in names if n not in users]
        if missing or not self.exists():
            users.update({n: new_password() for n in missing})
            self.save(users)
        return users


def new_password() -> str:
    return secrets.token_urlsafe(24)
