"""Commands that start, stop and inspect sync through the running node's admin API: trigger, sync,
bulk, unlink, status, rules, errors, retry, resolve, conflicts.

They only format what ``/api/v1/`` (``node/web/sync_api.py``) answers; every decision is the node's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import click

from node.commands.common import admin_client, echo_json, home_option, path_part, say, table

F = TypeVar("F", bound=Callable[..., Any])

BULK_POLL_SECONDS = 0.25
DIRECTIONS = click.Choice(["outgoing", "incoming"])
MODES = click.Choice(["basic", "visual", "script"])


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _connection_option(required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--connection",
        "connection",
        required=required,
        help="Connection name (as `tandem connections` shows it).",
    )


def _json_option(what: str) -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


# -- triggers ---------------------------------------------------------------------------------------


@click.group("trigger")
def trigger() -> None:
    """Triggers: JQL queries that put matching issues in sync over a connection."""


def _trigger_line(t: dict[str, Any]) -> str:
    state = "active" if t["active"] else "disabled"
    note = f"  # {t['note']}" if t["note"] else ""
    return f"trigger {t['id']} ({t['connection']}, {state}): {t['query']}{note}"


@trigger.command("add")
@home_option
@_connection_option()
@click.option("--query", required=True, help="JQL evaluated on every changed issue, e.g. 'project = SUP'.")
@click.option("--note", default="", help="Why this trigger exists (shown in lists).")
@_json_option("the new trigger")
def trigger_add(home: Path | None, connection: str, query: str, note: str, as_json: bool) -> None:
    """Add a trigger: issues matching QUERY are synced over CONNECTION from now on."""
    result = admin_client(home).call(
        "POST", "/api/v1/triggers", {"connection": connection, "query": query, "note": note}
    )
    if as_json:
        echo_json(result)
    else:
        say(_trigger_line(result))


@trigger.command("list")
@home_option
@_connection_option(required=False)
@_json_option("the triggers")
def trigger_list(home: Path | None, connection: str | None, as_json: bool) -> None:
    """List triggers (of every connection, or of --connection)."""
    path = "/api/v1/triggers" + (f"?{urlencode({'connection': connection})}" if connection else "")
    items = admin_client(home).call("GET", path)["triggers"]
    if as_json:
        echo_json(items)
        return
    if not items:
        say("no triggers")
        return
    rows = [
        [str(t["id"]), t["connection"], "yes" if t["active"] else "no", t["query"], t["note"]] for t in items
    ]
    table(["ID", "CONNECTION", "ACTIVE", "QUERY", "NOTE"], rows)


def _set_active(home: Path | None, trigger_id: int, active: bool) -> None:
    result = admin_client(home).call("PATCH", f"/api/v1/triggers/{trigger_id}", {"active": active})
    say(_trigger_line(result))


@trigger.command("enable")
@home_option
@click.argument("trigger_id", metavar="ID", type=click.IntRange(1))
def trigger_enable(home: Path | None, trigger_id: int) -> None:
    """Enable trigger ID."""
    _set_active(home, trigger_id, True)


@trigger.command("disable")
@home_option
@click.argument("trigger_id", metavar="ID", type=click.IntRange(1))
def trigger_disable(home: Path | None, trigger_id: int) -> None:
    """Disable trigger ID (issues already in sync stay in sync)."""
    _set_active(home, trigger_id, False)


@trigger.command("remove")
@home_option
@click.argument("trigger_id", metavar="ID", type=click.IntRange(1))
def trigger_remove(home: Path | None, trigger_id: int) -> None:
    """Remove trigger ID (issues already in sync stay in sync)."""
    admin_client(home).call("DELETE", f"/api/v1/triggers/{trigger_id}")
    say(f"trigger {trigger_id}: removed")


# -- sync, bulk, unlink, status ---------------------------------------------------------------------


@click.command("sync")
@home_option
@click.argument("key")
@_connection_option()
@_json_option("the outcome")
def sync(home: Path | None, key: str, connection: str, as_json: bool) -> None:
    """Sync issue KEY over a connection now (links it if it is not linked yet)."""
    result = admin_client(home).call("POST", "/api/v1/sync", {"key": key, "connection": connection})
    if as_json:
        echo_json(result)
    elif result["sent"]:
        say(f"{result['key']}: sent to {result['connection']} (version {result['version']})")
    else:
        reason = result["reason"] or "nothing changed since the last replica sent"
        say(f"{result['key']}: not sent to {result['connection']}: {reason}")


def _job_summary(job: dict[str, Any]) -> str:
    total = "?" if job["total"] is None else str(job["total"])
    text = f"bulk job {job['id']} {job['state']}: {job['done']}/{total} synced, {job['failed']} failed"
    if job.get("error"):
        text += f" ({job['error']})"
    return text


def _follow(home: Path | None, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job until it is no longer running, drawing a progress bar on stderr."""
    client = admin_client(home)
    job_id = job["id"]
    shown = 0
    with contextlib.ExitStack() as stack:
        bar: Any = None
        try:
            while True:
                if bar is None and job["total"] is not None:
                    bar = stack.enter_context(
                        click.progressbar(
                            length=max(job["total"], 1),
                            label=f"bulk job {job_id} ({job['connection']})",
                            file=sys.stderr,
                            show_pos=True,
                        )
                    )
                if bar is not None:
                    processed = job["done"] + job["failed"]
                    bar.length = max(bar.length or 0, job["total"] or 0, processed, 1)
                    bar.update(processed - shown)
                    shown = processed
                if job["state"] != "running":
                    return job
                time.sleep(BULK_POLL_SECONDS)
                job = client.call("GET", f"/api/v1/bulk/{job_id}")
        except click.ClickException as exc:
            hint = f"the job resumes with the node; re-attach with `tandem bulk --job {job_id}`"
            raise click.ClickException(f"{exc.message} ({hint})") from None
        except KeyboardInterrupt:
            say(
                f"\nbulk job {job_id} keeps running on the node; re-attach with `tandem bulk --job {job_id}`",
                err=True,
            )
            raise SystemExit(130) from None


@click.command("bulk")
@home_option
@_connection_option(required=False)
@click.option("--query", default=None, help="JQL: every matching issue is synced over the connection.")
@click.option("--job", "job_id", default=None, type=click.IntRange(1), help="Follow this existing job.")
@click.option("--no-wait", is_flag=True, help="Start the job, print its id and return at once.")
@_json_option("the job (when it ends, or at once with --no-wait)")
def bulk(
    home: Path | None,
    connection: str | None,
    query: str | None,
    job_id: int | None,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Sync every issue matching --query over --connection, with a progress bar.

    The job runs on the node: it survives this command (Ctrl-C), and a node restart (it resumes by
    itself). Re-attach with --job ID. Exit status 1 unless every issue was synced.
    """
    if job_id is not None:
        if connection or query:
            raise click.UsageError("give --job ID alone, or --connection and --query to start a job")
        job = admin_client(home).call("GET", f"/api/v1/bulk/{job_id}")
    else:
        if not connection or not query:
            raise click.UsageError("give --connection and --query (or --job ID to follow a job)")
        job = admin_client(home).call("POST", "/api/v1/bulk", {"connection": connection, "query": query})
        if no_wait:
            if as_json:
                echo_json(job)
            else:
                say(job["id"])
            return
    job = _follow(home, job)
    if as_json:
        echo_json(job)
    else:
        say(_job_summary(job))
    if job["state"] != "done" or job["failed"]:
        if job["failed"] and not as_json:
            say("see `tandem errors` for what failed", err=True)
        raise SystemExit(1)


@click.command("unlink")
@home_option
@click.argument("key")
@_connection_option()
@_json_option("the twin")
def unlink(home: Path | None, key: str, connection: str, as_json: bool) -> None:
    """Stop syncing issue KEY over a connection (both issues stay where they are)."""
    result = admin_client(home).call("POST", "/api/v1/unlink", {"key": key, "connection": connection})
    if as_json:
        echo_json(result)
    else:
        other = result["remote_key"] or "its twin"
        say(f"{result['local_key']}: unlinked from {other} over {result['connection']}")


@click.command("status")
@home_option
@click.argument("key")
@click.option("--replicas", is_flag=True, help="Also print the last replica sent and the last received.")
@_json_option("every twin, replicas included")
def status(home: Path | None, key: str, replicas: bool, as_json: bool) -> None:
    """Show issue KEY's twin on each connection: key and URL there, last sent/received, last result."""
    result = admin_client(home).call("GET", f"/api/v1/status/{path_part(key)}")
    twins = result["twins"]
    if as_json:
        echo_json(result)
        return
    if not twins:
        say(f"{key} is not synced over any connection")
        return
    for i, t in enumerate(twins):
        if i:
            say("")
        there = t["remote_key"] or "(not created yet)"
        url = f"  {t['remote_url']}" if t["remote_url"] else ""
        say(f"{t['local_key']} over {t['connection']}: {t['state']}, twin {there}{url}")
        sent_version = f" (version {t['last_sent_version']})" if t["last_sent_version"] is not None else ""
        got_version = (
            f" (version {t['last_received_version']})" if t["last_received_version"] is not None else ""
        )
        say(f"  last sent      {_when(t['last_sent_at'])}{sent_version}")
        say(f"  last received  {_when(t['last_received_at'])}{got_version}")
        say(f"  last result    {t['last_result'] or '-'}")
        if replicas:
            say("  local replica (last sent):")
            say(_indent(json.dumps(t["local_replica"], indent=2, sort_keys=True)))
            say("  remote replica (last received):")
            say(_indent(json.dumps(t["remote_replica"], indent=2, sort_keys=True)))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# -- rules ------------------------------------------------------------------------------------------


@click.group("rules")
def rules() -> None:
    """Rules of one connection and direction: show, edit a draft, test it, publish, roll back."""


def _rules_options(fn: F) -> F:
    fn = click.option(
        "--direction", required=True, type=DIRECTIONS, help="outgoing (what we send) or incoming."
    )(fn)
    fn = _connection_option()(fn)
    return home_option(fn)


def _rules_path(connection: str, direction: str, tail: str = "") -> str:
    return f"/api/v1/connections/{path_part(connection)}/rules/{direction}{tail}"


def _version_line(v: dict[str, Any]) -> str:
    return f"version {v['version']} ({v['mode']}, {v['state']}, {_when(v['created_at'])})"


@rules.command("show")
@_rules_options
@click.option("--versions", is_flag=True, help="List every version instead of the current sources.")
@_json_option("the rule set (published, draft, every version)")
def rules_show(home: Path | None, connection: str, direction: str, versions: bool, as_json: bool) -> None:
    """Print the published rules (and the draft, if any) with their versions."""
    result = admin_client(home).call("GET", _rules_path(connection, direction))
    if as_json:
        echo_json(result)
        return
    if versions:
        if not result["versions"]:
            say(f"no {direction} rule versions for {connection} yet")
            return
        rows = [
            [str(v["version"]), v["state"], v["mode"], _when(v["created_at"])] for v in result["versions"]
        ]
        table(["VERSION", "STATE", "MODE", "CREATED"], rows)
        return
    published, draft = result["published"], result["draft"]
    say(f"{direction} rules of {connection}")
    if published is None:
        say("published: none (Basic defaults are in force)")
    else:
        say(f"published: {_version_line(published)}")
        _echo_source(published["source"])
    if draft is not None:
        say(f"draft: {_version_line(draft)}")
        _echo_source(draft["source"])


def _echo_source(source: str) -> None:
    if source.strip():
        say(_indent(source.rstrip("\n")))


def _mode_for(path: str | None, current: dict[str, Any] | None) -> str | None:
    if path and path != "-":
        suffix = Path(path).suffix.lower()
        if suffix == ".py":
            return "script"
        if suffix in (".yaml", ".yml", ".json"):
            return "visual"
    return str(current["mode"]) if current else None


def _with_source_line(message: str, source: str) -> str:
    match = re.match(r"line (\d+)\b", message)
    lines = source.splitlines()
    if match and 1 <= int(match.group(1)) <= len(lines):
        n = int(match.group(1))
        return f"{message}\n  {n} | {lines[n - 1]}"
    return message


@rules.command("edit")
@_rules_options
@click.option("--file", "file", default=None, help="Rules source to save as the draft (- for stdin).")
@click.option("--mode", default=None, type=MODES, help="basic, visual (YAML/JSON) or script (Python).")
@_json_option("the saved draft")
def rules_edit(
    home: Path | None, connection: str, direction: str, file: str | None, mode: str | None, as_json: bool
) -> None:
    """Save a draft from --file, or from $EDITOR when interactive; compile errors name their line.

    The mode defaults to the file's type (.py: script; .yaml, .yml, .json: visual), else to the
    current draft's or published rules' mode.
    """
    client = admin_client(home)
    from_editor = False
    current_set = client.call("GET", _rules_path(connection, direction))
    current = current_set["draft"] or current_set["published"]
    mode = mode or _mode_for(file, current)
    if file == "-":
        source = sys.stdin.read()
    elif file is not None:
        try:
            source = Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {file}: {exc}", param_hint="--file") from None
    elif mode == "basic":
        source = ""
    elif sys.stdin.isatty() and sys.stdout.isatty():
        mode = mode or "visual"
        start = current["source"] if current and current["mode"] == mode else ""
        edited = click.edit(start, extension=".py" if mode == "script" else ".yaml", require_save=True)
        if edited is None:
            say("not saved: the editor was closed without saving")
            return
        source = edited
        from_editor = True
    else:
        raise click.UsageError("give --file F (or - for stdin), or run interactively with $EDITOR set")
    if mode is None:
        raise click.UsageError("give --mode basic|visual|script (it cannot be told from the file)")
    try:
        draft = client.call(
            "PUT", _rules_path(connection, direction, "/draft"), {"mode": mode, "source": source}
        )
    except click.ClickException as exc:
        message = _with_source_line(exc.message, source)
        if from_editor:  # never lose what the admin typed
            fd, kept = tempfile.mkstemp(prefix="tandem-rules-", suffix=".py" if mode == "script" else ".yaml")
            with os.fdopen(fd, "w") as f:
                f.write(source)
            message += f"\nyour text is in {kept}: fix it, then `tandem rules edit … --file {kept}`"
        raise click.ClickException(message) from None
    if as_json:
        echo_json(draft)
        return
    say(f"{direction} rules of {connection}: draft saved as {_version_line(draft)}")
    say(
        f"test it with `tandem rules test --connection {connection} --direction {direction} --key KEY`, "
        "then `tandem rules publish`"
    )


@rules.command("test")
@_rules_options
@click.option(
    "--key",
    default=None,
    help="A local issue (incoming: its twin's last received replica, or the issue --replica is tested on).",
)
@click.option("--replica", "replica_file", default=None, help="Incoming: a replica JSON file (- for stdin).")
@click.option("--published", is_flag=True, help="Run the published rules instead of the draft.")
@_json_option("the whole test run (direction, replica or changes, warnings)")
def rules_test(
    home: Path | None,
    connection: str,
    direction: str,
    key: str | None,
    replica_file: str | None,
    published: bool,
    as_json: bool,
) -> None:
    """Run the draft (or --published) rules and print the replica (outgoing) or change set (incoming)
    as JSON. Nothing is sent or applied."""
    if direction == "outgoing" and replica_file:
        raise click.UsageError("outgoing rules run on a local issue: give --key")
    if not key and not replica_file:
        raise click.UsageError("give --key KEY" + (" or --replica FILE" if direction == "incoming" else ""))
    body: dict[str, Any] = {"published": published}
    if key:
        body["key"] = key
    if replica_file:
        try:
            text = sys.stdin.read() if replica_file == "-" else Path(replica_file).read_text()
            body["replica"] = json.loads(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {replica_file}: {exc}", param_hint="--replica") from None
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--replica") from None
        if not isinstance(body["replica"], dict):
            raise click.BadParameter("a replica is a JSON object", param_hint="--replica")
    result = admin_client(home).call("POST", _rules_path(connection, direction, "/test"), body)
    if as_json:
        echo_json(result)
        return
    for warning in result.get("warnings", []):
        say(f"warning: {warning}", err=True)
    if direction == "outgoing":
        if result["replica"] is None:
            say("the rules filter this issue out: nothing would be sent", err=True)
        echo_json(result["replica"])
    else:
        echo_json(result["changes"])


@rules.command("publish")
@_rules_options
def rules_publish(home: Path | None, connection: str, direction: str) -> None:
    """Publish the draft: it governs every replica from now on."""
    v = admin_client(home).call("POST", _rules_path(connection, direction, "/publish"))
    say(f"{direction} rules of {connection}: published {_version_line(v)}")


@rules.command("rollback")
@_rules_options
def rules_rollback(home: Path | None, connection: str, direction: str) -> None:
    """Publish the previously published version again."""
    v = admin_client(home).call("POST", _rules_path(connection, direction, "/rollback"))
    say(f"{direction} rules of {connection}: rolled back to {_version_line(v)}")


# -- errors and conflicts ---------------------------------------------------------------------------


@click.command("errors")
@home_option
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved errors.")
@_json_option("the errors")
def errors(home: Path | None, include_resolved: bool, as_json: bool) -> None:
    """List sync errors: what failed, where, why, how often; paused entities wait for retry/resolve."""
    path = "/api/v1/errors" + ("?all=true" if include_resolved else "")
    items = admin_client(home).call("GET", path)["errors"]
    if as_json:
        echo_json(items)
        return
    if not items:
        say("no errors")
        return
    rows = []
    for e in items:
        state = e["state"] + (", paused" if e["paused"] else "")
        message = e["message"]
        if e["line"] is not None and f"line {e['line']}" not in message:
            message = f"line {e['line']}: {message}"
        rows.append(
            [
                str(e["id"]),
                state,
                e["kind"],
                e["connection"] or "-",
                e["entity"] or "-",
                str(e["count"]),
                _when(e["last_seen"]),
                message,
            ]
        )
    table(["ID", "STATE", "KIND", "CONNECTION", "ENTITY", "COUNT", "LAST SEEN", "MESSAGE"], rows)


@click.command("retry")
@home_option
@click.argument("error_id", metavar="ID", type=click.IntRange(1))
def retry(home: Path | None, error_id: int) -> None:
    """Retry what error ID paused (after fixing its cause)."""
    e = admin_client(home).call("POST", f"/api/v1/errors/{error_id}/retry")
    say(f"error {e['id']}: {e['state']}")


@click.command("resolve")
@home_option
@click.argument("error_id", metavar="ID", type=click.IntRange(1))
def resolve(home: Path | None, error_id: int) -> None:
    """Mark error ID resolved without retrying (un-pauses what it paused)."""
    e = admin_client(home).call("POST", f"/api/v1/errors/{error_id}/resolve")
    say(f"error {e['id']}: {e['state']}")


@click.command("conflicts")
@home_option
@_connection_option(required=False)
@_json_option("the conflicts")
def conflicts(home: Path | None, connection: str | None, as_json: bool) -> None:
    """List fields edited on both sides at once, and which side's value won."""
    path = "/api/v1/conflicts" + (f"?{urlencode({'connection': connection})}" if connection else "")
    items = admin_client(home).call("GET", path)["conflicts"]
    if as_json:
        echo_json(items)
        return
    if not items:
        say("no conflicts")
        return

    def short(value: Any) -> str:
        text = json.dumps(value, sort_keys=True)
        return text if len(text) <= 40 else text[:37] + "..."

    rows = [
        [
            str(c["id"]),
            c["connection"],
            c["entity"],
            c["field"],
            short(c["local_value"]),
            short(c["remote_value"]),
            c["winner"],
            _when(c["at"]),
        ]
        for c in items
    ]
    table(["ID", "CONNECTION", "ENTITY", "FIELD", "LOCAL", "REMOTE", "WINNER", "AT"], rows)
