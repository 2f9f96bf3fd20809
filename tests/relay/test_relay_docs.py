"""docs/relay.md documents every option, metric and refusal the relay has."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from node.transport.relay import RelayLimits, RelayServer, relay_command
from node.transport.relay_client import REFUSALS

DOC = Path(__file__).resolve().parents[2] / "docs" / "relay.md"


def test_every_cli_option_is_documented() -> None:
    text = DOC.read_text()
    options = [opt for param in relay_command.params if isinstance(param, click.Option) for opt in param.opts]
    assert options
    missing = [opt for opt in options if f"`{opt}" not in text]
    assert not missing, f"options missing from {DOC.name}: {missing}"


@pytest.mark.parametrize("reason", REFUSALS)
def test_every_refusal_reason_is_documented(reason: str) -> None:
    assert f"`{reason}`" in DOC.read_text()


def test_every_metric_is_documented(tmp_path: Path) -> None:
    relay = RelayServer(tmp_path, RelayLimits())  # not started: the registry exists already
    names = {metric.name for metric in relay.metrics.registry.collect()}
    text = DOC.read_text()
    assert names
    missing = [name for name in names if f"`{name}`" not in text and f"`{name}_total" not in text]
    assert not missing, f"metrics missing from {DOC.name}: {missing}"
