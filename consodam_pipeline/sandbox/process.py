"""The two sandboxes as a child process: used by `consodam demo`, `consodam dev`, the benchmarks and tests."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from consodam_pipeline import endpoints as credentials
from consodam_pipeline.ports import free_port
from consodam_pipeline.sandbox.run import SandboxConfig


@dataclass
class SandboxProcess:
    data_dir: Path
    works: int = 300
    seed: int = 11
    dirt_rate: float = 0.005
    anchor: str | None = None
    token_ttl: int = 3600
    consonance_port: int = field(default_factory=free_port)
    dam_port: int = field(default_factory=free_port)
    startup_timeout_s: float = 300.0
    process: subprocess.Popen[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        config = SandboxConfig(self.data_dir, consonance_port=self.consonance_port, dam_port=self.dam_port)
        return config.env()

    @property
    def consonance_url(self) -> str:
        return self.env["CONSONANCE_URL"]

    @property
    def dam_url(self) -> str:
        return self.env["OTDAM_URL"]

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "consodam_pipeline.cli",
            "sandbox",
            "--works",
            str(self.works),
            "--seed",
            str(self.seed),
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
        return [*cmd, "--anchor", self.anchor] if self.anchor else cmd

    def start(self) -> Self:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + self.startup_timeout_s
        assert self.process.stdout is not None
        output = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            output.append(line)
            if "sandboxes ready" in line:
                return self
            if not line and self.process.poll() is not None:
                raise RuntimeError(
                    f"sandbox exited with {self.process.returncode}: {''.join(output)[-2000:]}"
                )
        self.stop()
        raise RuntimeError(f"sandbox did not start within {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> SandboxProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- the /_sandbox admin API ----

    def admin(self, which: str, method: str, path: str, **kwargs: Any) -> Any:
        base = self.consonance_url if which == "consonance" else self.dam_url
        response = httpx.request(method, base + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def approve_new_version(self, asset_id: str, uploaded_by: str | None = None) -> Any:
        """A designer uploads a new version of the asset and an art director approves it: the new version."""
        upload = {} if uploaded_by is None else {"by": uploaded_by}
        new = self.admin("dam", "POST", f"/_sandbox/assets/{asset_id}/versions", json=upload)
        self.admin(
            "dam",
            "POST",
            f"/_sandbox/assets/{new['asset_id']}/approval",
            json={"status": "approved", "by": "art.director@publisher.example"},
        )
        return new

    def fault(self, which: str, **rule: Any) -> None:
        self.admin(which, "POST", "/_sandbox/faults", json=rule)

    def clear_faults(self) -> None:
        for which in ("consonance", "dam"):
            self.admin(which, "DELETE", "/_sandbox/faults")

    def dam_token(self) -> str:
        response = httpx.post(
            f"{self.dam_url}/tenants/{credentials.DAM_TENANT}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials.DAM_CLIENT_ID,
                "client_secret": credentials.DAM_CLIENT_SECRET,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            f"{self.consonance_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {credentials.CONSONANCE_KEY}"},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()
