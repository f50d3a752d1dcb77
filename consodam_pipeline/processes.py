"""Services consodam starts, and how they stop when told.

A command that starts children (`consodam dev`, `consodam deploy-check`) turns SIGTERM and SIGHUP into the
same unwinding Ctrl-C causes, so every `with` block stops what it started. Each service runs in its own
process group, with SIGTERM and SIGINT at their default disposition (a parent that ignores them must not
hand that on: a child inherits ignored signals across exec), and is stopped as a group: SIGTERM, then
SIGKILL after a bound, so nothing it spawned (a webserver's code server, a daemon's run workers) is left
listening.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
LOCATION_NAME = "consodam_pipeline"  # as workspace.yaml and deploy/workspace.yaml name it
GRACE_S = 15.0  # how long a service has to exit on SIGTERM before its group is killed
CODE_SERVER_SHUTDOWN_GRACE_S = 5  # how long the code server lets calls in flight finish on SIGTERM


class Stopped(KeyboardInterrupt):
    """The command was told to stop (SIGTERM, SIGHUP): unwinds like Ctrl-C."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP unwind the command like Ctrl-C."""

    def unwind(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, unwind) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _default_signals() -> None:
    """In the child, before exec: its own process group, the stop signals at their default, none blocked."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def port_answers(host: str, port: int) -> bool:
    """True if something accepts connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def exec_code_server(host: str, port: int) -> NoReturn:
    """Become Dagster's code server for the code location, with SIGTERM and SIGINT at their default
    disposition: a process started by a parent that ignores them (nohup'd shells, some supervisors) would
    otherwise inherit that across exec, and Dagster's server would never hear them."""
    _default_signals()
    # On SIGTERM Dagster's server waits for calls in flight for this long (its default is the sensor
    # timeout, 60 s); a sensor tick cut short is evaluated again at the next tick.
    os.environ.setdefault("DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD", str(CODE_SERVER_SHUTDOWN_GRACE_S))
    dagster = shutil.which("dagster", path=os.path.dirname(sys.executable)) or "dagster"
    os.execv(
        dagster,
        [
            dagster,
            "code-server",
            "start",
            "-m",
            "consodam_pipeline.definitions",
            "--location-name",
            LOCATION_NAME,
            "-h",
            host,
            "-p",
            str(port),
        ],
    )


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def exec_celery_worker(name: str, home: Path) -> NoReturn:
    """Become a celery worker for edition runs' steps (`dagster-celery worker start`), on the broker
    CONSODAM_CELERY_BROKER names; its settings file is written under `home`."""
    import yaml

    from consodam_pipeline.sync.partitions import CELERY_BROKER, celery_settings

    settings = celery_settings()
    if settings is None:
        raise SystemExit(
            f"consodam: {CELERY_BROKER} is not set: name the broker, e.g. redis://127.0.0.1:6379/0"
        )
    config = home / f"celery-{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"execution": {"config": settings}}))
    open_instance_once()
    _default_signals()
    here = os.path.dirname(sys.executable)  # dagster-celery starts `celery` from PATH: this environment's
    os.environ["PATH"] = os.pathsep.join([here, os.environ.get("PATH", "")])
    worker = shutil.which("dagster-celery", path=here) or "dagster-celery"
    os.execv(
        worker,
        [worker, "worker", "start", "-A", "dagster_celery.app", "-y", str(config), "-n", name, "-l", "info"],
    )


def open_instance_once() -> None:
    """Open the Dagster instance the workers share, one process at a time: `dagster-celery worker start`
    opens it first thing, and workers starting together on a new SQLite `DAGSTER_HOME` would each create
    its storage (two schema heads, and every later open fails)."""
    import fcntl

    import dagster as dg

    dagster_home = os.environ.get("DAGSTER_HOME")
    if not dagster_home:
        raise SystemExit("consodam: DAGSTER_HOME is not set: workers use the instance the code server uses")
    Path(dagster_home).mkdir(parents=True, exist_ok=True)
    with open(Path(dagster_home) / ".consodam-instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with dg.DagsterInstance.get():
            pass


@dataclass
class Service:
    """One child service in its own process group."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    log: Path | None = None  # where its output goes (else inherited)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Service:
        out = open(self.log, "ab") if self.log else None  # noqa: SIM115  # closed when the service stops
        self.process = subprocess.Popen(
            list(self.command),
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
        if out:
            out.close()  # the child holds its own descriptor
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the service's whole process group."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, grace_s: float = GRACE_S) -> float:
        """SIGTERM to the group, then SIGKILL after `grace_s`; returns how long the service took to exit."""
        if self.process is None:
            return 0.0
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(10)
        took = time.monotonic() - started
        self.signal(signal.SIGKILL)  # whatever of its group outlived it
        return took

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
