"""The node's home directory: what lives where, with which permissions.

::

    <home>/              mode 0700
      config.toml        the configuration (node.config)
      identity.key       64 secret bytes (Ed25519 seed + X25519 secret), mode 0600
      admin.token        the admin API bearer token, mode 0600
      tandem.db          the SQLite store (+ -wal, -shm while running)
      run.json           written by `tandem run`: admin URL, peer URL, pid (removed at shutdown)

Secrets are created with ``os.open(..., 0o600)`` so they are never readable by others, not even
for an instant. Nothing here starts a network service.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from node.config import Config, ConfigError, load_config
from node.store.db import create_database
from protocol import NodeIdentity

ENV_HOME = "TANDEM_HOME"
DEFAULT_HOME = ".tandem"


class HomeError(Exception):
    """The home directory is missing, incomplete or unreadable (message for the operator)."""


@dataclass(frozen=True)
class RunInfo:
    pid: int
    admin_url: str
    peer_url: str | None
    node_id: str
    name: str


def resolve_home(option: str | os.PathLike[str] | None) -> Path:
    """``--home``, else ``$TANDEM_HOME``, else ``./.tandem``."""
    if option:
        return Path(option)
    env = os.environ.get(ENV_HOME)
    return Path(env) if env else Path(DEFAULT_HOME)


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _refuse_shared(path: Path) -> None:
    """A secret file others may read is refused (FileNotFoundError passes through)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HomeError(f"{path} is readable by others (mode {mode:o}); run chmod 600 on it")


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def key_path(self) -> Path:
        return self.root / "identity.key"

    @property
    def token_path(self) -> Path:
        return self.root / "admin.token"

    @property
    def db_path(self) -> Path:
        return self.root / "tandem.db"

    @property
    def run_path(self) -> Path:
        return self.root / "run.json"

    def exists(self) -> bool:
        return self.config_path.exists() or self.key_path.exists() or self.db_path.exists()

    def create(self, config: Config) -> NodeIdentity:
        """Create a new home. Refuses to touch an existing one."""
        if self.exists():
            raise HomeError(f"{self.root} already holds a Tandem node; refusing to overwrite it")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        identity = NodeIdentity.from_seed(os.urandom(64))
        _write_secret(self.key_path, identity.to_seed())
        _write_secret(self.token_path, (secrets.token_urlsafe(32) + "\n").encode())
        self.config_path.write_text(config.to_toml(), encoding="utf-8")
        # The store holds connection keys' state and the webhook secrets: owner-only from the first
        # byte (SQLite gives its -wal and -shm files the database file's mode).
        _write_secret(self.db_path, b"")
        create_database(self.db_path)
        return identity

    def _require(self) -> None:
        if not self.config_path.exists():
            raise HomeError(f"no Tandem node in {self.root} (run `tandem init`, or pass --home)")

    def load_config(self) -> Config:
        self._require()
        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            raise HomeError(str(exc)) from None

    def load_identity(self) -> NodeIdentity:
        self._require()
        try:
            _refuse_shared(self.key_path)
            seed = self.key_path.read_bytes()
        except FileNotFoundError:
            raise HomeError(f"{self.key_path} is missing: this home has no identity") from None
        if len(seed) != 64:
            raise HomeError(f"{self.key_path} is damaged (expected 64 bytes, found {len(seed)})")
        return NodeIdentity.from_seed(seed)

    def admin_token(self) -> str:
        try:
            _refuse_shared(self.token_path)
            token = self.token_path.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            raise HomeError(f"{self.token_path} is missing or unreadable") from None
        if not token:
            raise HomeError(f"{self.token_path} is empty")
        return token

    def write_run_info(self, info: RunInfo) -> None:
        tmp = self.run_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)), encoding="utf-8")
        tmp.replace(self.run_path)

    def read_run_info(self) -> RunInfo | None:
        try:
            data = json.loads(self.run_path.read_text(encoding="utf-8"))
            return RunInfo(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def clear_run_info(self, pid: int) -> None:
        info = self.read_run_info()
        if info is not None and info.pid == pid:
            self.run_path.unlink(missing_ok=True)
