"""Change probes shared by the ingest sensors: a cheap listing of what changed recently, fingerprinted.

A run is requested when the fingerprint of the recent-changes window differs from the last tick's; the
run_key carries the fingerprint, so Dagster never runs the same change set twice, and a tick costs
time in proportion to recent changes, not to the catalog.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import dagster as dg


@dataclass
class ProbeCursor:
    fingerprint: str = ""
    high_water: str = ""

    @classmethod
    def parse(cls, raw: str | None) -> "ProbeCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def fingerprint(changes: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for key, version in sorted(changes):
        digest.update(f"{key}\x1f{version}\n".encode())
    return digest.hexdigest()


def never_materialized(context: dg.SensorEvaluationContext, asset_key: dg.AssetKey) -> bool:
    return context.instance.get_latest_materialization_event(asset_key) is None


def decide(
    context: dg.SensorEvaluationContext,
    *,
    asset_key: dg.AssetKey,
    changes: list[tuple[str, str]],
    cursor: ProbeCursor,
    high_water: str = "",
) -> dg.SensorResult:
    fp = fingerprint(changes)
    new_cursor = ProbeCursor(fingerprint=fp, high_water=high_water or cursor.high_water).dump()
    name = asset_key.to_user_string()
    if never_materialized(context, asset_key):
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{name}:initial:{fp[:16]}",
                    asset_selection=[asset_key],
                    tags={"consodam/trigger": "initial load"},
                )
            ],
            cursor=new_cursor,
        )
    if not changes or fp == cursor.fingerprint:
        return dg.SensorResult(skip_reason=f"no new changes ({len(changes)} in window)", cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{name}:{fp[:24]}",
                asset_selection=[asset_key],
                tags={"consodam/changes_in_window": str(len(changes))},
            )
        ],
        cursor=new_cursor,
    )
