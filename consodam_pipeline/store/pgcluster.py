"""A throwaway PostgreSQL 15 cluster (initdb + pg_ctl) on a free loopback port: for the tests and the
PostgreSQL benchmarks. Runs the server as the `postgres` user (or `nobody`) when we are root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from consodam_pipeline.ports import free_port


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

    @property
    def options(self) -> str:
        # A buffer cache and a WAL budget sized as for a production store, not the 128 MB / 1 GB defaults:
        # a backfill appends millions of ledger rows to five indexes in one transaction.
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_buffers=1GB -c max_wal_size=8GB"
        )

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
        self._run("pg_ctl", "-D", str(data), "-o", self.options, "-l", str(self.dir / "log"), "-w", "start")
        try:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "consodam")
        except BaseException:
            self.stop()  # never leave a server behind
            raise
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/consodam"

    def halt(self) -> None:
        """Stop the server, keeping its data (an outage); `resume` starts it again on the same port."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-o",
            self.options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def create_database(self, name: str) -> str:
        """A further database on the cluster; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{name}"

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
