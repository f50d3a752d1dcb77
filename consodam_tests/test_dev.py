"""`consodam dev` as a user runs it: the sandboxes and Dagster's webserver and daemon come up, and SIGTERM to
the command stops every process it started (no sandbox, webserver, daemon or code server left listening)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from consodam_pipeline.ports import free_port
from consodam_pipeline.processes import descendants


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_every_service_consodam_dev_started(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CONSODAM_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    consodam = str(Path(sys.executable).parent / "consodam")
    dev = subprocess.Popen(
        [consodam, "dev", "--works", "30", "--port", str(port)],
        env=env,
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            raise AssertionError("the Dagster webserver did not come up")
        started = set(descendants(dev.pid))
        assert len(started) >= 4  # sandboxes, dg dev, webserver, daemon (and code servers)
        dev.send_signal(signal.SIGTERM)
        dev.wait(60)
        time.sleep(1)
        assert [p for p in started if alive(p)] == []
        try:
            httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
            raise AssertionError("the webserver still answers")
        except httpx.ConnectError:
            pass
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(10)
