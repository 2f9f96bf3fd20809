"""Real `tandem run` processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def free_port() -> int:
    """A port the OS picked (bound to port 0, then released for the node to take)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class TandemProc:
    """A `tandem …` child process of one test; :meth:`stop` ends it (SIGTERM, then SIGKILL when it
    has not exited after ``grace`` seconds)."""

    grace = 15.0

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, args: list[str], log: Path, ready_line: str, what: str) -> None:
        """Run `tandem ARGS…` with its output appended to ``log``; return once ``ready_line`` is in
        the log, and fail at once (with the log's tail) if the process exits first."""
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{what} exited: {log.read_text()[-2000:]}")
            return ready_line in log.read_text()

        wait_for(ready, START_TIMEOUT, f"{what} to be ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class NodeProc(TandemProc):
    def __init__(self, home: Path, name: str) -> None:
        super().__init__()
        self.home = home
        self.name = name
        self.log = home.parent / f"{home.name}.log"
        self.admin_url = ""
        self.peer_url: str | None = None

    # -- process ---------------------------------------------------------------------------------

    def cli(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", "--home", str(self.home), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tandem {' '.join(args)} failed: {result.stderr}")
        return result

    def configure(self, **sections: dict[str, Any]) -> None:
        path = self.home / "config.toml"
        data = tomllib.loads(path.read_text())
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        path.write_text(tomli_w.dumps(data))

    def start(self) -> NodeProc:
        (self.home / "run.json").unlink(missing_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "--home", str(self.home), "run"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=logf,
        )
        logf.close()
        proc = self.proc

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"node {self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                info: dict[str, Any] = json.loads((self.home / "run.json").read_text())
            except (FileNotFoundError, ValueError):
                return None
            return info if info["pid"] == proc.pid else None

        info = wait_for(ready, START_TIMEOUT, f"node {self.name} to be ready")
        self.admin_url = info["admin_url"]
        self.peer_url = info["peer_url"]
        assert "ready: admin" in self.log.read_text()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    # -- admin API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> tuple[int, Any]:
        token = (self.home / "admin.token").read_text().strip()
        request = urllib.request.Request(
            self.admin_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def ok(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        status, data = self.api(method, path, body, timeout)
        assert status < 300, (status, data)
        return data

    def connections(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.ok("GET", "/api/v1/connections")["connections"]
        return items

    def connection(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("GET", f"/api/v1/connections/{name}")
        return result

    def invite(self, **body: Any) -> str:
        code: str = self.ok("POST", "/api/v1/invitations", body)["code"]
        return code

    def accept(self, code: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("POST", "/api/v1/invitations/accept", {"code": code, **body})
        return result

    def probes(self, name: str) -> list[int]:
        """The probe numbers in this node's inbox for ``name``, in sequence order."""
        out: list[int] = []
        after = 0
        while True:
            page = self.ok("GET", f"/api/v1/connections/{name}/inbox?after={after}&limit=5000")["messages"]
            if not page:
                return out
            out.extend(m["message"]["n"] for m in page if m["type"] == "probe")
            after = page[-1]["seq"]

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + ("{" + want + "}" if want else " ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


class Cluster:
    """Homes and processes of one test; everything is stopped at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.nodes: list[NodeProc] = []
        self.relays: list[RelayProc] = []

    def relay(self) -> RelayProc:
        r = RelayProc(self.tmp / f"relay{len(self.relays)}")
        self.relays.append(r)
        return r.start()

    def node(self, name: str, *, public: bool, port: int | None = None, start: bool = True) -> NodeProc:
        home = self.tmp / name.lower()
        n = NodeProc(home, name)
        args = ["init", "--name", name, "--admin-listen", "127.0.0.1:0"]
        if public:
            port = port or free_port()
            args += ["--listen", f"127.0.0.1:{port}", "--public-url", f"http://127.0.0.1:{port}"]
        else:
            args += ["--private"]
        n.cli(*args)
        n.configure(
            links={"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "accept_wait_seconds": 10}
        )
        self.nodes.append(n)
        return n.start() if start else n

    def close(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()
        for r in self.relays:
            with contextlib.suppress(Exception):
                r.stop()


class RelayProc(TandemProc):
    """A `tandem relay` process on a fixed loopback port (so a restart keeps its URL)."""

    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = home.parent / "relay.out"

    def start(self) -> RelayProc:
        self.home.mkdir(exist_ok=True)
        self.out.write_bytes(b"")
        args = ["relay", "--listen", f"127.0.0.1:{self.port}", "--home", str(self.home)]
        self.spawn(args, self.out, "tandem relay ready", "the relay")
        return self
