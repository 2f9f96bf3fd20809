"""Helpers shared by the node's commands: the ``--home`` option, the admin API client, output."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click

from node.home import Home, HomeError, resolve_home

F = TypeVar("F", bound=Callable[..., Any])


def home_option(fn: F) -> F:
    """``--home DIR`` on a command; falls back to the group's ``--home``, then $TANDEM_HOME, then
    ./.tandem."""
    return click.option(
        "--home",
        "home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Node home directory (default: the group's --home, else $TANDEM_HOME, else ./.tandem).",
    )(fn)


def get_home(home: Path | None) -> Home:
    if home is None:
        root = click.get_current_context().find_root()
        group_home = root.params.get("home") if root.params else None
        home = Path(group_home) if group_home else None
    return Home(resolve_home(home))


class AdminClient:
    """Talks to the running node's admin API (URL from run.json, token from admin.token)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        info = home.read_run_info()
        if not home.config_path.exists():
            raise click.ClickException(f"no Tandem node in {home.root} (run `tandem init`, or pass --home)")
        if info is None or not _alive(info.pid):
            raise click.ClickException(
                f"the node in {home.root} is not running (start it with `tandem run --home {home.root}`)"
            )
        self.url = info.admin_url.rstrip("/")
        try:
            self.token = home.admin_token()
        except HomeError as exc:
            raise click.ClickException(str(exc)) from None

    def call(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise click.ClickException(printable(_error_message(exc))) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise click.ClickException(f"cannot reach the node's admin API at {self.url}: {reason}") from None


def admin_client(home: Path | None) -> AdminClient:
    return AdminClient(get_home(home))


def path_part(value: str) -> str:
    """``value`` quoted as one segment of an admin API path (a name may hold ``/``)."""
    return quote(value, safe="")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        err = json.loads(exc.read())["error"]
        return str(err["message"])
    except (ValueError, KeyError, TypeError):
        return f"the node answered HTTP {exc.code}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# C0 and C1 control characters except tab and newline: text from the other organisation (peer
# names, reasons, remote keys and URLs, tracker text) must not drive the admin's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` (ANSI/OSC escapes neutralised)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def say(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for human-readable output: every line passes through :func:`printable`."""
    click.echo(printable(str(message)), err=err, nl=nl)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def table(header: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart."""
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        say("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
