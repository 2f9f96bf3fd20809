"""The node's configuration file, ``<home>/config.toml``: schema, defaults, validation.

Every key is documented in ``docs/configuration.md`` (a test checks). Unknown keys and bad values are
errors that name the key, e.g. ``config.toml: peer.listen: expected HOST:PORT``. Written with tomli-w,
read with tomllib; nothing else touches the file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from node.sync.settings import SyncSettings
from node.trackers import DEFAULT_CONNECTIONS

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
_URL = re.compile(r"^(https?|wss?)://[^\s/]+(/[^\s]*)?$")


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and key."""


def parse_hostport(value: str) -> tuple[str, int]:
    match = _HOSTPORT.match(value)
    if match is None:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8780), got {value!r}")
    port = int(match.group(2))
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return match.group(1).strip("[]"), port


def _check_url(value: str | None) -> str | None:
    if value is not None and _URL.match(value) is None:
        raise ValueError(f"expected an http(s):// URL, got {value!r}")
    return value.rstrip("/") if value else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NodeSection(_Section):
    name: str = Field(min_length=1, max_length=200, description="the node's display name, shown to peers")


class PeerSection(_Section):
    mode: Literal["public", "private"] = Field(
        "private", description="public: listen for peers; private: listen for no one and dial out"
    )
    listen: str = Field("0.0.0.0:8443", description="HOST:PORT of the peer listener (public mode)")
    public_url: str | None = Field(
        None, description="the URL peers dial (public mode); default http://HOST:PORT of the listener"
    )
    max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest peer frame accepted"
    )
    serve_metrics: bool = Field(
        False, description="also serve /metrics on the peer listener (it names connections and counts)"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _check_url(v)


class AdminSection(_Section):
    listen: str = Field("127.0.0.1:8780", description="HOST:PORT of the admin API (loopback by default)")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(v)
        return v


class LinksSection(_Section):
    backoff_base_seconds: float = Field(0.5, gt=0, le=60, description="first reconnect delay ceiling")
    backoff_max_seconds: float = Field(30.0, gt=0, le=3600, description="reconnect delay cap")
    heartbeat_seconds: float = Field(20.0, gt=0, le=3600, description="WebSocket ping interval")
    park_seconds: float = Field(
        30.0, ge=0, le=600, description="how long a dial-in for a not-yet-accepted invitation waits"
    )
    accept_wait_seconds: float = Field(
        15.0, ge=0, le=600, description="how long `tandem accept` waits for the inviter's welcome"
    )

    @model_validator(mode="after")
    def _order(self) -> LinksSection:
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ValueError("backoff_base_seconds must not exceed backoff_max_seconds")
        return self


class StoreSection(_Section):
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="SQLite synchronous mode (NORMAL survives kill -9; FULL also power loss)"
    )


class LogSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")


TrackerKind = Literal["jira-cloud", "jira-server", "github"]
TRACKER_KINDS: tuple[str, ...] = ("jira-cloud", "jira-server", "github")
DEFAULT_TOKEN_ENV = "TANDEM_TRACKER_TOKEN"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TrackerSection(_Section):
    """The tracker this node sits beside (see node.trackers.registry and node.sync.intake)."""

    kind: TrackerKind = Field(description="jira-cloud, jira-server or github")
    url: str | None = Field(
        None, description="the tracker's base URL (github: default https://api.github.com)"
    )
    user: str | None = Field(None, description="the proxy user (Jira Cloud: email; Server: username)")
    auth: Literal["basic", "bearer"] | None = Field(
        None, description="basic (user + API token/password) or bearer (personal access token)"
    )
    token: str | None = Field(None, repr=False, description="the API token (else read from token_env)")
    token_env: str = Field(DEFAULT_TOKEN_ENV, description="environment variable holding the token")
    projects: list[str] = Field(
        default_factory=list, description="projects (Jira keys, GitHub owner/repo) polled; empty = all"
    )
    poll_seconds: float = Field(3.0, ge=0.1, le=3600, description="polling interval")
    poll_seconds_webhooks: float = Field(
        60.0, ge=0.1, le=86400, description="polling interval while webhooks are registered"
    )
    webhooks: Literal["auto", "on", "off"] = Field("auto", description="register a webhook at start")
    webhook_url: str | None = Field(None, description="base URL the tracker posts webhooks to")
    webhook_listen: str | None = Field(None, description="private node: HOST:PORT of a webhook-only listener")
    webhook_signing: Literal["auto", "on", "off"] = Field(
        "auto", description="ask the tracker to sign deliveries (auto: where the tracker kind signs)"
    )
    reconcile_seconds: float = Field(
        300.0, ge=0, le=7 * 86400, description="reconciliation interval (0: off)"
    )
    verify_tls: bool = Field(True, description="verify the tracker's TLS certificate")
    timeout_seconds: float = Field(60.0, gt=0, le=3600, description="total timeout of one tracker request")
    connections: int = Field(
        DEFAULT_CONNECTIONS,
        ge=1,
        le=256,
        description="kept-alive HTTP connections to the tracker at most, in each of its two pools",
    )
    retry_max_seconds: float = Field(
        300.0, gt=0, le=86400, description="longest wait between credential checks / failed polls"
    )

    @field_validator("url", "webhook_url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, got {v!r}")
        return _check_url(v)

    @field_validator("webhook_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_hostport(v)
        return v

    @field_validator("token_env")
    @classmethod
    def _env(cls, v: str) -> str:
        if _ENV_NAME.match(v) is None:
            raise ValueError(f"not an environment variable name: {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrackerSection:
        if self.kind.startswith("jira"):
            if self.url is None:
                raise ValueError("url: a Jira tracker needs its base URL")
            if self.effective_auth == "basic" and not self.user:
                raise ValueError("user: basic authentication on Jira needs the proxy user")
        return self

    @property
    def effective_auth(self) -> Literal["basic", "bearer"]:
        if self.auth is not None:
            return self.auth
        return "bearer" if self.kind == "github" else "basic"

    @property
    def base_url(self) -> str:
        return self.url or "https://api.github.com"


class Config(_Section):
    node: NodeSection
    peer: PeerSection = Field(default_factory=lambda: PeerSection())
    admin: AdminSection = Field(default_factory=AdminSection)
    links: LinksSection = Field(default_factory=LinksSection)
    store: StoreSection = Field(default_factory=StoreSection)
    log: LogSection = Field(default_factory=LogSection)
    tracker: TrackerSection | None = None
    sync: SyncSettings = Field(default_factory=SyncSettings)

    @model_validator(mode="after")
    def _webhooks_reachable(self) -> Config:
        t = self.tracker
        if t is not None and t.webhooks == "on" and self.peer.mode != "public" and t.webhook_url is None:
            raise ValueError(
                "tracker.webhooks: 'on' needs a public node (peer.mode) or tracker.webhook_url "
                "(with tracker.webhook_listen) so the tracker can reach this node"
            )
        if (
            t is not None
            and t.webhooks != "off"
            and t.webhook_url is not None
            and self.peer.mode != "public"
            and t.webhook_listen is None
        ):
            raise ValueError(
                "tracker.webhook_url on a private node needs tracker.webhook_listen (HOST:PORT where "
                "this node receives the tracker's webhooks)"
            )
        return self

    @property
    def public(self) -> bool:
        return self.peer.mode == "public"

    def to_toml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        # [sync] holds only what was set explicitly, so defaults can improve with new releases
        data["sync"] = self.sync.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        if not data["sync"]:
            del data["sync"]
        return HEADER + tomli_w.dumps(data)


HEADER = """\
# Tandem node configuration. Every key is described in docs/configuration.md.
# [node] name: shown to peers. [peer] mode: "public" (listen for peers at public_url) or "private"
# (listen for no one, dial out). [admin] listen: the admin API, loopback by default.

"""

SECTIONS: dict[str, type[BaseModel]] = {
    "node": NodeSection,
    "peer": PeerSection,
    "admin": AdminSection,
    "links": LinksSection,
    "store": StoreSection,
    "log": LogSection,
    "tracker": TrackerSection,
    "sync": SyncSettings,
}


def all_keys() -> list[str]:
    """Every config key as ``section.key`` (used by the docs test)."""
    return [f"{s}.{k}" for s, model in SECTIONS.items() for k in model.model_fields]


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {msg}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config.toml") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist (run `tandem init` first)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from None
    return parse_config(data, path.name)


_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``30m``, ``24h``, ``7d``, ``90s``, ``2w`` or plain seconds → seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)")
    return int(match.group(1)) * _UNITS[match.group(2)]
