"""`make demo`: two emulated Jira sites, two Tandem nodes, paired, syncing.

Support works on Jira Cloud (emulated) with the workflow Open → Accept → Root Cause → Provide
Workaround → Resolve → Close; engineering works on a Jira Server behind a firewall (emulated), whose
node is private: it only dials out. The demo pairs them with an invitation code, adds a trigger, and
escalates an issue: it appears on the engineering side, a comment and a status change travel back.
Everything runs on 127.0.0.1 under ./.demo; Ctrl-C stops it all.

    .venv/bin/python scripts/demo.py [--once]     # --once: run the story, print, stop (used by tests)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TANDEM = [str(BIN / "tandem")] if (BIN / "tandem").exists() else [sys.executable, "-m", "node.cli"]
PROCS: list[subprocess.Popen[str]] = []


# Support's incoming rules: support always sees the state engineering reached, in its own workflow.
SUPPORT_INCOMING = """\
create: false
fields:
  status: true
  priority: false
values:
  status:
    map:
      In Progress: Root Cause
      Done: Resolve
    unmatched: ignore
comments:
  internal: skip
  header: "*{author}* (engineering) wrote:"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"==> {text}", flush=True)


def tandem(*args: str, home: Path | None = None, check: bool = True) -> str:
    cmd = [*TANDEM, *(["--home", str(home)] if home else []), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise SystemExit(f"demo: `tandem {' '.join(args)}` failed:\n{out.stderr or out.stdout}")
    return out.stdout.strip()


def start(args: list[str], log: Path, ready: str, timeout: float = 60) -> subprocess.Popen[str]:
    handle = log.open("w")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    PROCS.append(proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log.read_text():
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"demo: {' '.join(args[:3])} exited:\n{log.read_text()}")
        time.sleep(0.1)
    raise SystemExit(f"demo: {' '.join(args[:3])} did not become ready; see {log}")


class Jira:
    """Just enough REST to play a person on an emulated Jira (v2 API, basic auth)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", self.auth)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def search(self, jql: str) -> list[dict[str, Any]]:
        q = urllib.parse.quote(jql)
        return list(self.call("GET", f"/rest/api/2/search?jql={q}&fields=summary,status,comment")["issues"])

    def transition_to(self, key: str, status: str) -> None:
        for t in self.call("GET", f"/rest/api/2/issue/{key}/transitions")["transitions"]:
            if t["to"]["name"] == status:
                self.call("POST", f"/rest/api/2/issue/{key}/transitions", {"transition": {"id": t["id"]}})
                return
        raise SystemExit(f"demo: no transition to {status} from {key}'s status")


def wait_for(what: str, fn: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--once", action="store_true", help="run the story once and stop")
    parser.add_argument("--dir", default=str(ROOT / ".demo"), help="working directory (wiped first)")
    args = parser.parse_args()

    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chmod(work, 0o700)

    cloud_port, server_port = free_port(), free_port()
    say("starting two emulated trackers")
    start(
        [*TANDEM, "emulate", "jira-cloud", "--port", str(cloud_port), "--project", "SUP"],
        work / "jira-cloud.log",
        "Emulating jira-cloud",
    )
    start(
        [*TANDEM, "emulate", "jira-server", "--port", str(server_port), "--project", "ENG"],
        work / "jira-server.log",
        "Emulating jira-server",
    )
    cloud = Jira(f"http://127.0.0.1:{cloud_port}", "admin", "admin")
    server = Jira(f"http://127.0.0.1:{server_port}", "admin", "admin")
    cloud.call("PUT", "/_emulator/projects/SUP/workflow", {"workflow": "support"})
    # Each node acts through its own bot account (its proxy user), never as a person: that is how
    # it tells its own writes from people's edits.
    for site, bot in ((cloud, "tandem-support"), (server, "tandem-eng")):
        site.call(
            "POST",
            "/_emulator/users",
            {"name": bot, "password": "bot-token", "displayName": f"Tandem ({bot})",
             "email": f"{bot}@example.invalid", "groups": ["jira-administrators", "jira-users"]},
        )  # fmt: skip
    print(f"    support's Jira Cloud     http://127.0.0.1:{cloud_port}   (admin / admin)")
    print(f"    engineering's Jira Server http://127.0.0.1:{server_port}  (admin / admin)")

    say("creating two nodes: support (public) and engineering (private: dials out only)")
    sup, eng = work / "support", work / "engineering"
    peer_port = free_port()
    tandem(
        "init", "--name", "Support", "--public-url", f"http://127.0.0.1:{peer_port}",
        "--listen", f"127.0.0.1:{peer_port}", "--admin-listen", "127.0.0.1:0",
        "--tracker", "jira-cloud", "--tracker-url", cloud.url,
        "--tracker-user", "tandem-support", "--tracker-token", "bot-token",
        home=sup,
    )  # fmt: skip
    tandem(
        "init", "--name", "Engineering", "--private", "--admin-listen", "127.0.0.1:0",
        "--tracker", "jira-server", "--tracker-url", server.url,
        "--tracker-user", "tandem-eng", "--tracker-token", "bot-token",
        home=eng,
    )  # fmt: skip
    start([*TANDEM, "--home", str(sup), "run"], work / "support.log", "ready:")
    start([*TANDEM, "--home", str(eng), "run"], work / "engineering.log", "ready:")

    say("support invites engineering; engineering pastes the code")
    code = tandem("invite", "--name", "engineering", "--project", "SUP", home=sup)
    print(f"    invitation code: {code[:48]}… ({len(code)} characters)")
    print(
        "    "
        + tandem("accept", code, "--name", "support", "--project", "ENG", home=eng).replace("\n", "\n    ")
    )
    print("    " + tandem("connections", home=sup).replace("\n", "\n    "))

    say("support syncs every issue labelled 'escalate', and maps engineering's workflow onto its own")
    tandem("trigger", "add", "--connection", "engineering", "--query", "labels = escalate", home=sup)
    rules = work / "support-incoming.yaml"
    rules.write_text(SUPPORT_INCOMING)
    tandem("rules", "edit", "--connection", "engineering", "--direction", "incoming", "--mode", "visual",
           "--file", str(rules), home=sup)  # fmt: skip
    tandem("rules", "publish", "--connection", "engineering", "--direction", "incoming", home=sup)
    print("    " + SUPPORT_INCOMING.strip().replace("\n", "\n    "))

    say("a customer request is escalated in support's Jira")
    created = cloud.call(
        "POST",
        "/rest/api/2/issue",
        {
            "fields": {
                "project": {"key": "SUP"},
                "issuetype": {"name": "Bug"},
                "summary": "Export to CSV times out for large accounts",
                "description": "Customer ACME: exports over *50k rows* fail after 30 s.",
                "labels": ["escalate"],
            }
        },
    )
    started = time.monotonic()
    twin = wait_for("the twin in engineering's Jira", lambda: server.search("project = ENG"))[0]
    print(f"    {created['key']} → {twin['key']} in {1000 * (time.monotonic() - started):.0f} ms")

    say("an internal note stays in support; a public comment travels")
    cloud.call(
        "POST",
        f"/rest/api/2/issue/{created['key']}/comment",
        {"body": "Internal: ACME is on the enterprise plan", "properties": [
            {"key": "sd.public.comment", "value": {"internal": True}}]},
    )  # fmt: skip
    cloud.call(
        "POST", f"/rest/api/2/issue/{created['key']}/comment", {"body": "Customer attached a sample file."}
    )

    def eng_comments() -> list[str]:
        issue = server.call("GET", f"/rest/api/2/issue/{twin['key']}?fields=comment")
        return [c["body"] for c in issue["fields"]["comment"]["comments"]]

    bodies = wait_for("the public comment", lambda: [b for b in eng_comments() if "sample file" in b])
    print(f"    engineering sees: {bodies[0]!r}")
    print(f"    internal note leaked: {any('enterprise' in b for b in eng_comments())}")

    say("engineering resolves it; support's issue walks its own workflow")
    server.transition_to(twin["key"], "In Progress")
    server.transition_to(twin["key"], "Done")

    def support_status() -> str | None:
        status = cloud.call("GET", f"/rest/api/2/issue/{created['key']}?fields=status")["fields"]["status"][
            "name"
        ]
        return status if status == "Resolved" else None

    print(f"    {created['key']} is now: {wait_for('the status to travel back', support_status)}")
    print("    " + tandem("status", created["key"], home=sup).replace("\n", "\n    "))

    if args.once:
        return
    say("running — try it yourself (Ctrl-C stops everything):")
    print(f"    tandem --home {sup} connections      tandem --home {eng} status {twin['key']}")
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(PROCS):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in PROCS:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
