"""Every CLI command and option, every config key, is documented (datasette's test_docs idea)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from node.cli import main
from node.config import all_keys

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, click.Command]]:
        yield " ".join(path), cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name])

    yield from walk(main, ["tandem"])


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^#{2,3} (tandem[\w -]*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


COMMANDS = list(_commands())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_in_cli_md(path: str, command: click.Command) -> None:
    sections = _sections((DOCS / "cli.md").read_text())
    assert path in sections, f"docs/cli.md has no '## {path}' section"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            assert any(f"`{n}" in sections[path] for n in names), f"{path}: option {names} not in docs/cli.md"


@pytest.mark.parametrize("key", all_keys())
def test_every_config_key_is_in_configuration_md(key: str) -> None:
    assert f"`{key}`" in (DOCS / "configuration.md").read_text(), f"{key} not in docs/configuration.md"


def test_every_admin_route_is_in_admin_api_md() -> None:
    from node.web.openapi import openapi_document

    text = (DOCS / "admin-api.md").read_text()
    for path in openapi_document()["paths"]:
        assert f"`{path}" in text, f"{path} not in docs/admin-api.md"
