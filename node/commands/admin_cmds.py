"""Commands that talk to the running node through its admin API: invite, accept, connections,
connection activate|deactivate|delete|test|inbox."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from node.commands.common import admin_client, echo_json, home_option, path_part, say, table
from node.config import parse_duration


@click.command("invite")
@home_option
@click.option("--name", default=None, help="Name of the new connection (default: generated).")
@click.option(
    "--peer-url", default=None, help="Private inviter: the acceptor's public URL, which this node dials."
)
@click.option("--relay", default=None, help="Meet the acceptor at this relay URL (both sides dial it).")
@click.option(
    "--expires", default="24h", show_default=True, help="How long the code is valid: 30m, 24h, 7d, ..."
)
@click.option("--project", default=None, help="Project key the connection is about (informational).")
def invite(
    home: Path | None,
    name: str | None,
    peer_url: str | None,
    relay: str | None,
    expires: str,
    project: str | None,
) -> None:
    """Create an invitation code; prints only the code on stdout."""
    if peer_url and relay:
        raise click.UsageError("give --peer-url or --relay, not both")
    try:
        seconds = parse_duration(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    body: dict[str, Any] = {"expires": seconds}
    for key, value in (("name", name), ("peer_url", peer_url), ("relay", relay), ("project", project)):
        if value is not None:
            body[key] = value
    result = admin_client(home).call("POST", "/api/v1/invitations", body)
    say(result["code"])


@click.command("accept")
@home_option
@click.argument("code")
@click.option("--name", default=None, help="Name of the new connection (default: from the invitation).")
@click.option("--project", default=None, help="Project key the connection is about (informational).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def accept(home: Path | None, code: str, name: str | None, project: str | None, as_json: bool) -> None:
    """Accept an invitation CODE (use - to read it from stdin)."""
    if code == "-":
        code = sys.stdin.read()
    if not code.strip():
        raise click.ClickException("the invitation code is empty")
    body: dict[str, Any] = {"code": code.strip()}
    if name is not None:
        body["name"] = name
    if project is not None:
        body["project"] = project
    result = admin_client(home).call("POST", "/api/v1/invitations/accept", body)
    if as_json:
        echo_json(result)
        return
    conn = result["connection"]
    say(f"connection   {conn['name']}")
    say(f"peer         {conn['peer']['name']} ({conn['peer']['node_id']})")
    say(f"verification {result['verification']}")
    if not result["paired"]:
        say("state        pending: waiting for the inviter's node to answer")


def _row(c: dict[str, Any]) -> list[str]:
    q = c["queues"]
    return [
        c["name"],
        c["state"] + (f" ({c['error']})" if c.get("error") else ""),
        c["peer"]["node_id"] or "-",
        c["reach"],
        c["link"]["state"],
        c["last_contact"] or "-",
        f"{q['outbox_unacked']}/{q['inbox_unprocessed']}",
        c["verification"] or "-",
    ]


@click.command("connections")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print the connections as JSON.")
def connections(home: Path | None, as_json: bool) -> None:
    """List connections: state, peer, how reached, last contact, queues (outbox/inbox), verification."""
    items = admin_client(home).call("GET", "/api/v1/connections")["connections"]
    if as_json:
        echo_json(items)
        return
    if not items:
        say("no connections")
        return
    header = ["NAME", "STATE", "PEER NODE ID", "REACH", "LINK", "LAST CONTACT", "OUT/IN", "VERIFICATION"]
    table(header, [_row(c) for c in items])


@click.group("connection")
def connection() -> None:
    """Act on one connection."""


def _state_command(action: str, help: str) -> click.Command:
    """``connection ACTION NAME``: POST …/connections/NAME/ACTION and print the new state."""

    @connection.command(action, help=help)
    @home_option
    @click.argument("name")
    def command(home: Path | None, name: str) -> None:
        result = admin_client(home).call("POST", f"/api/v1/connections/{path_part(name)}/{action}")
        say(f"{result['name']}: {result['state']}")

    return command


activate = _state_command("activate", "Activate a deactivated connection (queued messages are delivered).")
deactivate = _state_command("deactivate", "Deactivate a connection: close its link; messages keep queueing.")


@connection.command("delete")
@home_option
@click.argument("name")
def delete(home: Path | None, name: str) -> None:
    """Delete a connection: tell the peer (Bye) if possible and forget its keys."""
    admin_client(home).call("DELETE", f"/api/v1/connections/{path_part(name)}")
    say(f"{name}: deleted")


@connection.command("test")
@home_option
@click.argument("name")
@click.option(
    "--count", default=1, show_default=True, type=click.IntRange(1, 100_000), help="Probes to send."
)
@click.option("--sequential", is_flag=True, help="Send one at a time, waiting for each ack (latency mode).")
@click.option("--no-wait", is_flag=True, help="Queue the probes and return without waiting for acks.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0.1, 3600), help="Seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def test(
    home: Path | None, name: str, count: int, sequential: bool, no_wait: bool, timeout: float, as_json: bool
) -> None:
    """Send COUNT probe messages over a connection and report round trips and throughput."""
    body = {"count": count, "sequential": sequential, "wait": not no_wait, "timeout_seconds": timeout}
    report = admin_client(home).call(
        "POST", f"/api/v1/connections/{path_part(name)}/test", body, timeout=timeout + 30
    )
    if as_json:
        echo_json(report)
    else:
        status = "acked" if report["acked"] else ("queued" if no_wait else "NOT all acked")
        say(
            f"{report['sent']} probes (seq {report['first_seq']}-{report['last_seq']}) {status} "
            f"in {report['elapsed_ms']:.1f} ms ({report['messages_per_s']:.0f} msg/s)"
        )
        if "rtt_ms" in report:
            r = report["rtt_ms"]
            say(f"round trip ms: min {r['min']}  p50 {r['p50']}  p99 {r['p99']}  max {r['max']}")
    if not no_wait and not report["acked"]:
        raise SystemExit(1)


@connection.command("inbox")
@home_option
@click.argument("name")
@click.option(
    "--after", default=0, show_default=True, type=click.IntRange(0), help="Show sequence numbers after this."
)
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most this many."
)
def inbox(home: Path | None, name: str, after: int, limit: int) -> None:
    """Print delivered messages of a connection as JSON, in sequence order."""
    echo_json(
        admin_client(home).call(
            "GET", f"/api/v1/connections/{path_part(name)}/inbox?after={after}&limit={limit}"
        )
    )
