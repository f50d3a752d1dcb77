"""Test support: real sandboxes in a subprocess, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ANCHOR = "2026-11-01"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sandbox:
    data_dir: Path
    works: int = 300
    seed: int = 11
    dirt_rate: float = 0.02
    token_ttl: int = 3600
    consonance_port: int = field(default_factory=free_port)
    dam_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "CONSONANCE_URL": f"http://127.0.0.1:{self.consonance_port}",
            "CONSONANCE_API_KEY": "sandboxconsonancekey0000000000001",
            "OTDAM_URL": f"http://127.0.0.1:{self.dam_port}",
            "OTDAM_TENANT": "sandbox-tenant",
            "OTDAM_CLIENT_ID": "consodam-sandbox-client",
            "OTDAM_CLIENT_SECRET": "sandbox-dam-secret",
        }

    @property
    def consonance_url(self) -> str:
        return self.env["CONSONANCE_URL"]

    @property
    def dam_url(self) -> str:
        return self.env["OTDAM_URL"]

    def start(self) -> Sandbox:
        cmd = [
            sys.executable,
            "-m",
            "consodam_pipeline.cli",
            "sandbox",
            "--works",
            str(self.works),
            "--seed",
            str(self.seed),
            "--anchor",
            ANCHOR,
            "--dirt-rate",
            str(self.dirt_rate),
            "--data-dir",
            str(self.data_dir),
            "--consonance-port",
            str(self.consonance_port),
            "--dam-port",
            str(self.dam_port),
            "--token-ttl",
            str(self.token_ttl),
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if "sandboxes ready" in line:
                return self
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self.process.returncode}")
        raise RuntimeError("sandbox did not start within 120 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> Sandbox:
        self.stop()
        return self.start()

    # ---- admin API helpers ----

    def admin(self, which: str, method: str, path: str, **kwargs: Any) -> Any:
        base = self.consonance_url if which == "consonance" else self.dam_url
        response = httpx.request(method, base + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def fault(self, which: str, **rule: Any) -> None:
        self.admin(which, "POST", "/_sandbox/faults", json=rule)

    def clear_faults(self) -> None:
        for which in ("consonance", "dam"):
            self.admin(which, "DELETE", "/_sandbox/faults")

    def dam_token(self) -> str:
        response = httpx.post(
            f"{self.dam_url}/tenants/sandbox-tenant/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "consodam-sandbox-client",
                "client_secret": "sandbox-dam-secret",
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            f"{self.consonance_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.env['CONSONANCE_API_KEY']}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---- PostgreSQL ----


def find_pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent  # often a symlink into /usr/lib/postgresql/N/bin
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PostgresCluster:
    """initdb + pg_ctl in a temp dir, on a free loopback port; as the `postgres` user when we are root."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="consodam-pg-"))
        self.port = free_port()
        self.user = "consodam"
        self.run_as: str | None = None
        if os.geteuid() == 0:
            self.run_as = "postgres" if _user_exists("postgres") else "nobody"
            info = pwd.getpwnam(self.run_as)
            os.chown(self.dir, info.pw_uid, info.pw_gid)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def start(self) -> str:
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "consodam")
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/consodam"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
