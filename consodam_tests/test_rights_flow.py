"""Rights and tags against the sandboxes: the first sync, idempotency, and a rights change flowing
through sensor and automation to exactly the affected partition and assets."""

from pathlib import Path

import dagster as dg
import httpx
import polars as pl

from consodam_pipeline.defs.ingest.sensors import consonance_change_sensor
from consodam_pipeline.derived.restrictions import RIGHTS_FIELD
from consodam_pipeline.derived.title_tags import TAG_FIELD
from consodam_pipeline.domain.periods import period_keys
from consodam_tests.pipeline import (
    edition_tick,
    ingest,
    metadata,
    resources,
    store,
    sync_partitions,
    table,
)
from consodam_tests.support import Sandbox

ALL = period_keys()


def rights_and_tags() -> list[object]:
    from consodam_pipeline.defs.rights.matrix import rights_matrix
    from consodam_pipeline.defs.rights.restrictions import dam_access_restrictions
    from consodam_pipeline.defs.tags.title_tags import dam_title_tags

    return [rights_matrix, dam_access_restrictions, dam_title_tags]


def dam_fields(sandbox: Sandbox, asset_id: str) -> tuple[dict[str, str], list[int]]:
    token = sandbox.dam_token()
    asset = httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6/assets/{asset_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()["asset_resource"]["asset"]
    fields = {
        e["id"]: e["value"]["value"]["value"]
        for e in asset["metadata"]["metadata_element_list"]
        if e["id"].startswith(("CONSODAM.RIGHTS.", "CONSODAM.TAG.")) and e.get("value", {}).get("value")
    }
    return fields, [p["id"] for p in asset["security_policy_list"]]


def test_rights_and_tags_sync_then_follow_a_change(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=120, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            first = sync_partitions(sandbox, home, instance, ALL, rights_and_tags())
            checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
            assert checks["grants_follow_the_rules"] and checks["no_grant_before_embargo"]
            restrictions = metadata(first, "dam_access_restrictions")
            tags = metadata(first, "dam_title_tags")
            assert restrictions["written"] > 0 and restrictions["failed"] == 0
            assert tags["written"] > 0 and tags["failed"] == 0
            # Title tags go to the newest version of each asset: sample one of those.
            newest = table(home, "dam_asset_inventory").filter(pl.col("is_latest") & ~pl.col("orphan_tag"))
            matrix = pl.read_parquet(home / "tables" / "rights_matrix").filter(pl.col("visible"))
            sample = matrix.join(newest.select("asset_id"), on="asset_id").sort("asset_id").row(0, named=True)
            fields, policies = dam_fields(sandbox, sample["asset_id"])
            assert fields[RIGHTS_FIELD + "COUNTRIES"] and policies in ([1], [2], [3])
            assert fields[TAG_FIELD + "TITLE"]
            ledger = store(home).ledger.size()
            assert ledger == restrictions["written"] + tags["written"]

            again = sync_partitions(sandbox, home, instance, ALL, rights_and_tags())
            assert metadata(again, "dam_access_restrictions")["written"] == 0
            assert metadata(again, "dam_title_tags")["written"] == 0
            assert store(home).ledger.size() == ledger

            load = edition_tick(instance, sandbox, home)  # the first load: every period, one run
            assert len(load.runs) == 1 and load.periods == ALL
            tick = edition_tick(instance, sandbox, home, load.cursor)
            assert tick.runs == []  # nothing changed since, nothing requested

            titles = table(home, "title_metadata_snapshot")
            target = titles.filter(pl.col("for_sale_worldwide")).row(0, named=True)
            sandbox.admin(
                "consonance",
                "POST",
                f"/_sandbox/products/{target['product_id']}",
                json={
                    "isForSaleWorldwide": False,
                    "forSaleCountryCodes": ["GB", "IE"],
                    "notForSaleCountryCodes": [],
                },
            )
            probe = dg.build_sensor_context(instance=instance, resources=resources(sandbox, home))
            sensor = consonance_change_sensor(probe)
            assert isinstance(sensor, dg.SensorResult) and sensor.run_requests
            ingest(sandbox, home, instance, assets=[definitions_asset("title_metadata_snapshot")])
            tick = edition_tick(instance, sandbox, home, tick.cursor)
            period = periods_of(home, target["work_id"])
            assert tick.periods == [period]  # exactly the partition holding that edition
            assert [r.job_name for r in tick.runs] == ["consodam_editions"]  # every asset, in one run
            before = store(home).ledger.size()
            result = sync_partitions(sandbox, home, instance, [period], rights_and_tags())
            written = metadata(result, "dam_access_restrictions")["written"]
            assert written > 0
            events = store(home).ledger.size() - before
            assert events >= written
            work_assets = (
                table(home, "dam_asset_inventory")
                .filter((pl.col("work_id") == target["work_id"]) | (pl.col("isbn13") == target["isbn13"]))[
                    "asset_id"
                ]
                .to_list()
            )
            changed = (
                pl.read_parquet(home / "tables" / "dam_access_restrictions" / f"{period}.parquet")
                .filter(pl.col("written"))["key"]
                .to_list()
            )
            assert changed and set(changed) <= set(work_assets)
            fields, _ = dam_fields(sandbox, changed[0])
            assert (
                fields[RIGHTS_FIELD + "COUNTRIES"] in ("GB IE",) or "GB" in fields[RIGHTS_FIELD + "COUNTRIES"]
            )
    finally:
        sandbox.stop()


def definitions_asset(name: str) -> object:
    from consodam_tests.pipeline import INGEST

    return next(a for a in INGEST if a.key.to_user_string() == name)


def periods_of(home: Path, work_id: int) -> str:
    from consodam_pipeline.domain.periods import work_periods

    periods = work_periods(table(home, "title_metadata_snapshot")).filter(pl.col("work_id") == work_id)
    return str(periods["period"][0])
