"""Chaos setup: two emulated Jira sites and two real `tandem run` processes, as a user would run them.

* support: `tandem emulate jira-cloud` (project SUP), node "Support" (public: it listens for peers and
  gets webhooks from its Jira), connection ``engineering``, trigger ``labels = escalate``.
* engineering: `tandem emulate jira-server` (project ENG), node "Engineering" (private: it dials
  support and polls its Jira), connection ``support``.

People act through each emulator's REST API as their own users (``alice`` on support, ``bob`` on
engineering), so the nodes see edits by someone other than their proxy user (``admin``). Processes
are reused from ``tests/e2e/harness.py``; faults come from the emulators' control API
(``/_emulator/faults``) and from ``kill -9``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import NodeProc, TandemProc, free_port, wait_for

POLL_SECONDS = 0.5  # tracker.poll_seconds of both nodes (engineering has no webhooks: it polls)
WEBHOOK_POLL_SECONDS = 2.0  # tracker.poll_seconds_webhooks: support's safety-net poll
TRIGGER = "labels = escalate"


class Emulator(TandemProc):
    """A `tandem emulate KIND` process on a fixed loopback port, and a person's REST calls to it."""

    grace = 10.0

    def __init__(self, tmp: Path, kind: str, project: str) -> None:
        super().__init__()
        self.kind = kind
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{kind}.log"

    def start(self) -> Emulator:
        args = ["emulate", self.kind, "--port", str(self.port), "--project", self.project]
        self.spawn(args, self.log, f"Emulating {self.kind}", f"emulator {self.kind}")
        return self

    # -- HTTP ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str = "admin",
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        auth = base64.b64encode(f"{user}:{user}".encode()).decode()
        all_headers = {"Authorization": f"Basic {auth}", **(headers or {})}
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            content = resp.read()
        if raw:
            return content
        return json.loads(content) if content else None

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """The control API (no auth, never faulted)."""
        return self.request(method, "/_emulator/" + path, body)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "stats")
        return result

    def writes(self) -> int:
        """Tracker writes so far: every POST/PUT/DELETE of the REST API except searches."""
        routes: dict[str, int] = self.stats()["routes"]
        return sum(
            n
            for route, n in routes.items()
            if route.split(" ", 1)[0] in ("POST", "PUT", "DELETE") and "search" not in route
        )

    def faults(self, **settings: Any) -> None:
        self.control("POST", "faults", settings)

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def add_user(self, name: str) -> None:
        self.control(
            "POST", "users", {"name": name, "displayName": name.title(), "email": f"{name}@x.example"}
        )

    # -- a person's view -------------------------------------------------------------------------

    def search(self, jql: str, fields: str = "summary") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            q = urllib.parse.urlencode({"jql": jql, "fields": fields, "startAt": len(out), "maxResults": 100})
            page = self.request("GET", f"/rest/api/2/search?{q}")
            out.extend(page["issues"])
            if not page["issues"] or len(out) >= page["total"]:
                return out

    def count(self) -> int:
        q = urllib.parse.urlencode({"jql": f"project = {self.project}", "maxResults": 0})
        return int(self.request("GET", f"/rest/api/2/search?{q}")["total"])

    def issue(self, key: str, fields: str = "summary,labels,priority,comment,attachment") -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/rest/api/2/issue/{key}?fields={fields}")
        return result

    def create(self, summary: str, *, user: str, labels: list[str] | None = None) -> str:
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": "Bug"},
            "summary": summary,
            "labels": labels or [],
        }
        return str(self.request("POST", "/rest/api/2/issue", {"fields": fields}, user=user)["key"])

    def edit(self, key: str, fields: dict[str, Any], *, user: str) -> None:
        self.request("PUT", f"/rest/api/2/issue/{key}", {"fields": fields}, user=user)

    def comment(self, key: str, body: str, *, user: str) -> None:
        self.request("POST", f"/rest/api/2/issue/{key}/comment", {"body": body}, user=user)

    def attach(self, key: str, name: str, content: bytes, *, user: str) -> None:
        boundary = uuid.uuid4().hex
        data = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-Atlassian-Token": "no-check",
        }
        self.request("POST", f"/rest/api/2/issue/{key}/attachments", data=data, headers=headers, user=user)

    def attachment_sha256(self, attachment: dict[str, Any]) -> str:
        path = urllib.parse.urlsplit(attachment["content"]).path
        return hashlib.sha256(self.request("GET", path, raw=True)).hexdigest()


@dataclass
class Site:
    """One organisation: its emulated Jira, its node, its connection name, and the person working."""

    emu: Emulator
    node: NodeProc
    connection: str
    person: str

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.node.cli(*args, "--json").stdout)

    def queues(self) -> dict[str, int]:
        conn = self.node.connection(self.connection)
        result: dict[str, int] = conn["queues"]
        return result

    def errors(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.node.ok("GET", "/api/v1/errors?all=true")["errors"]
        return items

    def twin_of(self, key: str) -> dict[str, Any] | None:
        twins = self.node.ok("GET", f"/api/v1/status/{key}")["twins"]
        return twins[0] if twins else None

    def restart(self) -> float:
        """Start the node again; seconds it took to be ready."""
        started = time.monotonic()
        self.node.start()
        return time.monotonic() - started


class Chaos:
    """Support and engineering, paired, with a trigger; torn down at the end of the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.support = Site(
            Emulator(tmp, "jira-cloud", "SUP"), NodeProc(tmp / "support", "Support"), "", "alice"
        )
        self.eng = Site(
            Emulator(tmp, "jira-server", "ENG"), NodeProc(tmp / "engineering", "Engineering"), "", "bob"
        )

    def setup(self) -> Chaos:
        sup, eng = self.support, self.eng
        sup.emu.start().add_user("alice")
        eng.emu.start().add_user("bob")
        peer_port = free_port()
        tracker = ["--tracker-user", "admin", "--tracker-token", "admin"]
        sup.node.cli(
            "init", "--name", "Support", "--admin-listen", "127.0.0.1:0",
            "--listen", f"127.0.0.1:{peer_port}", "--public-url", f"http://127.0.0.1:{peer_port}",
            "--tracker", "jira-cloud", "--tracker-url", sup.emu.url, "--tracker-project", "SUP", *tracker,
        )  # fmt: skip
        eng.node.cli(
            "init", "--name", "Engineering", "--admin-listen", "127.0.0.1:0", "--private",
            "--tracker", "jira-server", "--tracker-url", eng.emu.url, "--tracker-project", "ENG", *tracker,
        )  # fmt: skip
        for site in (sup, eng):
            site.node.configure(
                links={"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "accept_wait_seconds": 10},
                tracker={"poll_seconds": POLL_SECONDS, "poll_seconds_webhooks": WEBHOOK_POLL_SECONDS},
                sync={"retry_base_seconds": 0.1, "retry_max_seconds": 2.0},
            )
            site.node.start()
        code = sup.node.invite(name="engineering", project="SUP")
        eng.node.accept(code, name="support", project="ENG", wait_seconds=10)
        sup.connection, eng.connection = "engineering", "support"
        for site in (sup, eng):
            wait_for(lambda s=site: s.node.connection(s.connection)["state"] == "active", 20, "pairing")
        sup.node.ok(
            "POST", "/api/v1/triggers", {"connection": "engineering", "query": TRIGGER, "note": "chaos"}
        )
        return self

    def close(self) -> None:
        for site in (self.support, self.eng):
            with contextlib.suppress(Exception):
                site.node.stop()
        for site in (self.support, self.eng):
            with contextlib.suppress(Exception):
                site.emu.stop()

    # -- helpers shared by the tests -------------------------------------------------------------

    def prepare(self, n: int, *, comments: int = 3, tag: str = "") -> dict[str, str]:
        """``n`` support issues with comments and one attachment each, not yet escalated.
        Returns key → sha256 of its attachment."""
        sup = self.support
        shas: dict[str, str] = {}
        for i in range(n):
            key = sup.emu.create(f"{tag}customer request {i}", user=sup.person)
            for c in range(comments):
                sup.emu.comment(key, f"{tag}comment {c} on request {i}", user=sup.person)
            content = os.urandom(2048) + f"{key}".encode()
            sup.emu.attach(key, f"trace-{i}.bin", content, user=sup.person)
            shas[key] = hashlib.sha256(content).hexdigest()
        return shas

    def escalate(self, keys: list[str]) -> None:
        for key in keys:
            self.support.emu.edit(key, {"labels": ["escalate"]}, user=self.support.person)

    def eng_state(self) -> dict[str, dict[str, Any]]:
        """Every ENG issue: summary, comment bodies, attachments (name, sha256)."""
        eng = self.eng.emu
        out: dict[str, dict[str, Any]] = {}
        for issue in eng.search(
            f"project = {eng.project}", fields="summary,comment,attachment,labels,priority"
        ):
            f = issue["fields"]
            out[issue["key"]] = {
                "summary": f["summary"],
                "comments": [c["body"] for c in f["comment"]["comments"]],
                "attachments": [(a["filename"], eng.attachment_sha256(a)) for a in f["attachment"]],
                "labels": f["labels"],
                "priority": (f.get("priority") or {}).get("name"),
            }
        return out

    def converged(self, shas: dict[str, str], *, comments: int = 3) -> bool:
        """Every escalated issue has exactly one twin with its comments and attachment (no more)."""
        state = self.eng_state()
        if len(state) < len(shas):
            return False
        twins: dict[str, str] = {}
        for key in shas:
            view = self.support.twin_of(key)
            if not view or not view["remote_key"] or not (view["last_result"] or "").startswith("applied"):
                return False
            twins[key] = view["remote_key"]
        for key, sha in shas.items():
            issue = state[twins[key]]
            if len(issue["comments"]) < comments or not issue["attachments"]:
                return False
            assert [s for _, s in issue["attachments"]] == [sha], (key, issue["attachments"])
        return True

    def diagnose(self, shas: dict[str, str]) -> str:
        """What the two sides hold, for a failure message."""
        lines = []
        for key in shas:
            v = self.support.twin_of(key)
            shown = {k: v[k] for k in ("remote_key", "state", "last_result")} if v else "-"
            lines.append(f"{key}: {shown}")
        for key, issue in sorted(self.eng_state().items()):
            counts = f"comments={len(issue['comments'])} attachments={len(issue['attachments'])}"
            lines.append(f"{key}: {issue['summary']!r} {counts}")
        lines.append(f"support errors: {self.support.errors()}")
        lines.append(f"eng errors: {self.eng.errors()}")
        return "\n".join(lines)

    def wait_converged(self, shas: dict[str, str], *, comments: int = 3, timeout: float = 60) -> float:
        """Seconds until :meth:`converged`; on a timeout the failure shows both sides."""
        started = time.monotonic()
        try:
            wait_for(lambda: self.converged(shas, comments=comments), timeout, "convergence", interval=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnose(shas)}") from None
        return time.monotonic() - started

    def assert_exact(self, shas: dict[str, str], *, comments: int = 3) -> None:
        state = self.eng_state()
        assert len(state) == len(shas), f"{len(state)} ENG issues for {len(shas)} escalated (duplicates)"
        summaries = sorted(i["summary"] for i in state.values())
        assert len(set(summaries)) == len(summaries), "duplicate twins"
        for key, issue in state.items():
            assert len(issue["comments"]) == comments, (key, issue["comments"])
            assert len(issue["attachments"]) == 1, (key, issue["attachments"])
            assert issue["attachments"][0][1] in shas.values()


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    c = Chaos(tmp_path)
    try:
        yield c.setup()
    finally:
        c.close()


def report(title: str, **figures: Any) -> None:
    """One line of what a test observed (shown with ``pytest -s``)."""
    print(f"\n[chaos] {title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
