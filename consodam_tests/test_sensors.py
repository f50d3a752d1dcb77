"""Change sensors: a simulated change leads to a run request for exactly the affected asset; no change, no run."""

from pathlib import Path

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.ingest.sensors import consonance_change_sensor, dam_change_sensor
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.probe import due_now
from consodam_tests.pipeline import ingest
from consodam_tests.support import Sandbox


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    cursor: str | None,
    sandbox: Sandbox,
    home: Path,
) -> dg.SensorResult:
    resources = {
        "lineage": LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}"),
        "consonance": ConsonanceResource(
            url=sandbox.consonance_url, api_key=sandbox.env["CONSONANCE_API_KEY"]
        ),
        "dam": OpenTextDamResource(url=sandbox.dam_url),
    }
    context = dg.build_sensor_context(instance=instance, cursor=due_now(cursor), resources=resources)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def requested(result: dg.SensorResult) -> list[list[dg.AssetKey]]:
    return [list(r.asset_selection or []) for r in result.run_requests or []]


def test_consonance_sensor_requests_on_change_only(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        first = tick(consonance_change_sensor, instance, None, fresh_sandbox, tmp_path / "home")
        assert requested(first) == [
            [dg.AssetKey("title_metadata_snapshot")]
        ]  # never materialized: initial load
        ingest(fresh_sandbox, tmp_path / "home", instance)
        quiet = tick(consonance_change_sensor, instance, first.cursor, fresh_sandbox, tmp_path / "home")
        assert not quiet.run_requests and quiet.skip_reason
        product = fresh_sandbox.graphql("{ products(limit: 1) { id } }")["data"]["products"][0]["id"]
        fresh_sandbox.admin(
            "consonance",
            "POST",
            f"/_sandbox/products/{product}",
            json={"forSaleCountryCodes": ["GB"], "isForSaleWorldwide": False},
        )
        changed = tick(consonance_change_sensor, instance, quiet.cursor, fresh_sandbox, tmp_path / "home")
        assert requested(changed) == [[dg.AssetKey("title_metadata_snapshot")]]
        run_key = changed.run_requests[0].run_key  # type: ignore[index]
        assert run_key and run_key.startswith("title_metadata_snapshot:")
        again = tick(consonance_change_sensor, instance, changed.cursor, fresh_sandbox, tmp_path / "home")
        assert not again.run_requests
        fresh_sandbox.admin(
            "consonance", "POST", f"/_sandbox/products/{product}", json={"fullTitle": "Renamed"}
        )
        next_change = tick(consonance_change_sensor, instance, again.cursor, fresh_sandbox, tmp_path / "home")
        assert next_change.run_requests and next_change.run_requests[0].run_key != run_key


def test_dam_sensor_requests_on_change_only(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, tmp_path / "home", instance)
        first = tick(dam_change_sensor, instance, None, fresh_sandbox, tmp_path / "home")
        assert not first.run_requests
        token = fresh_sandbox.dam_token()
        import httpx

        asset = httpx.get(
            f"{fresh_sandbox.dam_url}/otmmapi/v6/assets",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["assets_resource"]["asset_list"][0]
        fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{asset['asset_id']}/versions", json={})
        changed = tick(dam_change_sensor, instance, first.cursor, fresh_sandbox, tmp_path / "home")
        assert requested(changed) == [[dg.AssetKey("dam_asset_inventory")]]
        assert not tick(
            dam_change_sensor, instance, changed.cursor, fresh_sandbox, tmp_path / "home"
        ).run_requests


def served(sandbox: Sandbox, which: str) -> int:
    return int(sandbox.admin(which, "GET", "/_sandbox/faults")["requests"])


def test_a_sensor_probes_only_when_its_probe_is_due(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    """The sensors tick every few seconds; a tick before the probe's interval has passed asks nothing of the
    DAM, and the first tick after it finds what changed meanwhile."""
    home = tmp_path / "home"
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, home, instance)
        first = tick(dam_change_sensor, instance, None, fresh_sandbox, home)
        listing = OpenTextDamResource(url=fresh_sandbox.dam_url)
        with listing.client() as client:
            version = client.asset_frame_page(0).assets.row(0, named=True)["asset_id"]
        fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{version}/versions", json={})
        before = served(fresh_sandbox, "dam")
        resources = {
            "lineage": LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}"),
            "dam": OpenTextDamResource(url=fresh_sandbox.dam_url),
        }
        early = dam_change_sensor(
            dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
        )
        assert isinstance(early, dg.SensorResult) and not early.run_requests
        assert "next probe in" in str(early.skip_reason)
        assert served(fresh_sandbox, "dam") == before  # not a request
        due = tick(dam_change_sensor, instance, early.cursor, fresh_sandbox, home)
        assert requested(due) == [[dg.AssetKey("dam_asset_inventory")]]
        assert served(fresh_sandbox, "dam") == before + 1  # one listing: the token is the process's


def test_the_dam_window_reaches_back_only_while_the_newest_change_is_recent(
    fresh_sandbox: Sandbox, tmp_path: Path
) -> None:
    """A change can show in the DAM's listing a little after its stamp, so the window reaches LOOKBACK behind
    the newest stamp seen; once that stamp has stood LOOKBACK, the window starts at it, and a probe at rest
    no longer lists the last burst again."""
    import json

    from consodam_pipeline.sync.probe import LOOKBACK

    home = tmp_path / "home"
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, home, instance)
        first = tick(dam_change_sensor, instance, None, fresh_sandbox, home)
        with OpenTextDamResource(url=fresh_sandbox.dam_url).client() as client:
            version = client.asset_frame_page(0).assets.row(0, named=True)["asset_id"]
        fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{version}/versions", json={})
        changed = tick(dam_change_sensor, instance, first.cursor, fresh_sandbox, home)
        assert requested(changed) == [[dg.AssetKey("dam_asset_inventory")]]
        recent = tick(dam_change_sensor, instance, changed.cursor, fresh_sandbox, home)
        assert not recent.run_requests and "(0 in window)" not in str(recent.skip_reason)  # re-read
        stood = json.loads(str(recent.cursor))
        stood["high_water_at"] -= LOOKBACK.total_seconds()
        settled = tick(dam_change_sensor, instance, json.dumps(stood), fresh_sandbox, home)
        assert not settled.run_requests and "(0 in window)" in str(settled.skip_reason)
        fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{version}/versions", json={})
        again = tick(dam_change_sensor, instance, settled.cursor, fresh_sandbox, home)
        assert requested(again) == [[dg.AssetKey("dam_asset_inventory")]]  # a new change is still found
