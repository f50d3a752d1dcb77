"""Starting the two sandboxes: seed the catalog once per data dir, then serve both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import uvicorn

from consodam_pipeline import endpoints
from consodam_pipeline.sandbox.catalog import CATALOG_REVISION, CatalogSpec, CatalogStats, seed_catalog
from consodam_pipeline.sandbox.consonance.server import ConsonanceSandbox, open_consonance_db
from consodam_pipeline.sandbox.dam.server import DamSandbox, open_dam_db
from consodam_pipeline.sandbox.faults import FaultInjector

HOST = "127.0.0.1"


@dataclass
class SandboxConfig:
    data_dir: Path
    works: int = 1000
    seed: int = 7
    anchor: date = field(default_factory=date.today)
    dirt_rate: float = 0.005
    consonance_port: int = endpoints.CONSONANCE_PORT
    dam_port: int = endpoints.DAM_PORT
    consonance_api_key: str = endpoints.CONSONANCE_KEY
    dam_tenant: str = endpoints.DAM_TENANT
    dam_client_id: str = endpoints.DAM_CLIENT_ID
    dam_client_secret: str = endpoints.DAM_CLIENT_SECRET
    token_ttl: int = 3600

    def env(self) -> dict[str, str]:
        """The same variables the clients read, pointing at these servers."""
        return {
            "CONSONANCE_URL": f"http://{HOST}:{self.consonance_port}",
            "CONSONANCE_API_KEY": self.consonance_api_key,
            "OTDAM_URL": f"http://{HOST}:{self.dam_port}",
            "OTDAM_TENANT": self.dam_tenant,
            "OTDAM_CLIENT_ID": self.dam_client_id,
            "OTDAM_CLIENT_SECRET": self.dam_client_secret,
        }


def ensure_catalog(config: SandboxConfig) -> CatalogStats | None:
    """Seed on first start; a restart keeps every write (a different seed or size asks for a new dir)."""
    consonance, dam = open_consonance_db(config.data_dir), open_dam_db(config.data_dir)
    try:
        seeded = consonance.meta("works")
        spec = CatalogSpec(
            works=config.works, seed=config.seed, anchor=config.anchor, dirt_rate=config.dirt_rate
        )
        if seeded is not None:
            if (seeded, consonance.meta("seed")) != (str(config.works), str(config.seed)):
                raise SystemExit(
                    f"{config.data_dir} holds a catalog of {seeded} works (seed {consonance.meta('seed')}); "
                    "use another --data-dir for a different catalog"
                )
            revision = consonance.meta("revision") or "2 or earlier"
            if revision != str(CATALOG_REVISION):
                raise SystemExit(
                    f"{config.data_dir} holds a catalog from an older sandbox (revision {revision}, this one is "
                    f"{CATALOG_REVISION}); remove the folder or use another --data-dir"
                )
            return None
        return seed_catalog(spec, consonance, dam)
    finally:
        consonance.close()
        dam.close()


def build_apps(config: SandboxConfig) -> tuple[ConsonanceSandbox, DamSandbox]:
    consonance = ConsonanceSandbox(
        open_consonance_db(config.data_dir), config.consonance_api_key, FaultInjector(seed=config.seed)
    )
    dam = DamSandbox(
        open_dam_db(config.data_dir),
        config.dam_tenant,
        config.dam_client_id,
        config.dam_client_secret,
        FaultInjector(seed=config.seed + 1),
        token_ttl=config.token_ttl,
    )
    return consonance, dam


async def serve(config: SandboxConfig, announce: bool = True) -> None:
    consonance, dam = build_apps(config)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app.app(), host=HOST, port=port, log_level="warning", access_log=False, timeout_keep_alive=30
            )
        )
        for app, port in ((consonance, config.consonance_port), (dam, config.dam_port))
    ]
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # injected drops are not server errors
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            await asyncio.gather(*tasks)  # surfaces the bind error
        await asyncio.sleep(0.05)
    if announce:
        for name, value in config.env().items():
            print(f"export {name}={value}")
        print("# sandboxes ready; Ctrl-C stops them", flush=True)
    await asyncio.gather(*tasks)
