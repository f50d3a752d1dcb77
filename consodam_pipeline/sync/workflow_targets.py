"""The F2 write targets: a title's project stage in Consonance, and review tasks in the DAM.

- stage: one slot per edition (its product id), always there; state `{"stage": …}`; written with the
  stage convention `updateProduct(input: {id, projectStageName})`, a full state, safe to repeat.
- review tasks: one slot per natural key — `review|<asset version>|<milestone>` (a decision wanted on one
  version) or `request|<ISBN>|<milestone>|<requirement>` (an asset wanted that the DAM lacks or cannot
  use); state is what identifies the task; opening is a create (looked up after an ambiguous reply), and
  a task nobody needs any more is cancelled with the reason. A decision a reviewer takes on a task consodam
  opened is recorded (`review_task_completed`, by whom) and the slot planned afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceClient
from consodam_pipeline.clients.dam_models import ReviewTask
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.clients.opentext_dam import DamClient
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.timestamps import parse_ts
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.target import Found, Outcome, Settled, WriteTarget, found_frame

STAGE_FIELD = "project_stage"  # the edition record's column the stage write sets (for the echo journal)
DECIDED = ("approved", "rejected")


def stage_state(stage: str | None) -> str:
    return canonical_json({"stage": stage})


@dataclass
class StageTarget(WriteTarget[ConsonanceClient]):
    entity: str = "title_stage"
    written_event: str = "stage_advanced"
    removed_event: str = "stage_unset"
    system: str = "consonance"
    single: bool = True

    def found(self, product_id: int, stage: str | None) -> Found:
        """The stage an edition is at, as read from Consonance just now."""
        return Found(str(product_id), str(product_id), stage_state(stage))

    def update(self, client: ConsonanceClient, found: Found, state: str) -> Found:
        product = client.update_product(int(found.handle), projectStageName=json.loads(state)["stage"])
        stage = stage_state(product.get("projectStageName"))
        return Found(found.key, found.handle, stage, None, product.get("updatedAt"))

    def create(self, client: ConsonanceClient, key: str, state: str) -> Found:
        raise ApiError(f"POST /graphql updateProduct {key}", 1, "the edition is not in Consonance")

    def delete(self, client: ConsonanceClient, found: Found) -> None:
        raise ApiError(f"POST /graphql updateProduct {found.key}", 1, "a stage is moved on, never removed")

    def journal_fields(self, done: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
        return {o.result.handle: {STAGE_FIELD: json.loads(o.result.state)["stage"]} for o in done if o.result}


def task_key(task: ReviewTask) -> str:
    if task.kind == "request":
        return request_key(str(task.isbn), task.milestone, str(task.requirement))
    return review_key(str(task.asset_id), task.milestone)


def review_key(asset_id: str, milestone: str) -> str:
    return f"review|{asset_id}|{milestone}"


def request_key(isbn: str, milestone: str, requirement: str) -> str:
    return f"request|{isbn}|{milestone}|{requirement}"


def task_state(
    kind: str,
    milestone: str,
    *,
    asset_id: str | None = None,
    isbn: str | None = None,
    requirement: str | None = None,
) -> str:
    if kind == "request":
        return canonical_json(
            {"kind": kind, "isbn": isbn, "milestone": milestone, "requirement": requirement}
        )
    return canonical_json({"kind": kind, "asset_id": asset_id, "milestone": milestone})


def task_found(task: ReviewTask) -> Found:
    state = task_state(
        task.kind, task.milestone, asset_id=task.asset_id, isbn=task.isbn, requirement=task.requirement
    )
    return Found(task_key(task), task.task_id, state)


@dataclass
class ReviewTaskTarget(WriteTarget[DamClient]):
    """dam_review_tasks for one run. `wanted`: every task the period's titles need (key, state, note,
    isbn13, and what the ledger names); `versions`: the DAM versions of the period's editions;
    `editions`: isbn13, work_id and period of each; `moot`: why each of some tasks no longer wanted is moot
    (from the packages and stages)."""

    wanted: pl.DataFrame = field(default_factory=pl.DataFrame)
    versions: pl.DataFrame = field(default_factory=pl.DataFrame)
    editions: pl.DataFrame = field(default_factory=pl.DataFrame)
    moot: Callable[[Sequence[str]], dict[str, str]] = lambda keys: {}
    reasons: dict[str, str] = field(default_factory=dict)  # the reasons given this run, said on cancelling
    decided: dict[str, ReviewTask] = field(default_factory=dict)  # tasks reviewers decided, by key
    entity: str = "dam_review_task"
    written_event: str = "review_task_opened"
    removed_event: str = "review_task_closed"
    system: str = "dam"

    def create(self, client: DamClient, key: str, state: str) -> Found:
        row = self.wanted.filter(pl.col("key") == key).row(0, named=True)
        wanted = {**json.loads(state), "note": row["note"]}
        wanted.setdefault("isbn", row["isbn13"])
        return task_found(client.open_review_task(**wanted))

    def update(self, client: DamClient, found: Found, state: str) -> Found:
        raise NotImplementedError("tasks are opened and cancelled, never edited")  # decide() never asks

    def delete(self, client: DamClient, found: Found) -> None:
        decided = self.decided_on_version(found.key)
        if decided is not None:
            note = (
                f"decided on the version in the DAM: {decided['approval_status']} by {decided['approved_by']}"
            )
            client.complete_review_task(
                found.handle, decided["approval_status"], decided["approved_by"], note
            )
            return
        client.cancel_review_task(found.handle, f"no longer needed: {self.reasons.get(found.key, 'moot')}")

    def decided_on_version(self, key: str) -> dict[str, Any] | None:
        """The version a review task asks about, when a reviewer decided it on the version itself (approved
        or rejected outside the task): the task is completed with that decision, not cancelled."""
        if not key.startswith("review|"):
            return None
        asset_id = key.split("|")[1]
        rows = self.versions.filter(
            (pl.col("asset_id") == asset_id) & pl.col("approval_status").is_in(list(DECIDED))
        )
        return rows.row(0, named=True) if rows.height else None

    def removal_event(self, found: Found, reason: str) -> Settled | None:
        decided = self.decided_on_version(found.key)
        if decided is None:
            return None
        after = {
            "task_id": found.handle,
            "milestone": json.loads(found.state).get("milestone"),
            "decision": decided["approval_status"],
            "decided_at": decided["approved_at"],
            "how": "decided on the version",
        }
        identity = f"{found.handle}|{decided['approval_status']}|{decided['approved_at']}"
        return Settled("review_task_completed", decided["approved_by"], after, identity)

    def lookup(self, client: DamClient, key: str) -> list[Found]:
        return [task_found(t) for t in client.review_tasks("open") if task_key(t) == key]

    # ---- one run ----

    def _mine(self, task: ReviewTask) -> bool:
        if task.kind == "request":
            return task.isbn in set(self.editions["isbn13"].to_list())
        return task.asset_id in set(self.versions["asset_id"].to_list())

    def observe(self, client: DamClient, store: LineageStore) -> pl.DataFrame:
        """The period's open tasks; the ones reviewers decided are kept for `settled`."""
        tasks = [t for t in client.review_tasks() if self._mine(t)]
        self.decided = {task_key(t): t for t in tasks if t.status in DECIDED}
        return found_frame([task_found(t) for t in tasks if t.status == "open"])

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        """Open tasks, and the tasks consodam recorded as open for this period's versions and editions."""
        assets, isbns = set(self.versions["asset_id"].to_list()), set(self.editions["isbn13"].to_list())
        recorded = [
            k
            for k in store.history.open_keys(self.entity)
            if k.split("|")[1] in (assets if k.startswith("review|") else isbns)
        ]
        return sorted({*found["key"].to_list(), *recorded})

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        self.reasons = self.moot(keys)
        return self.reasons

    def settled(self, keys: Sequence[str]) -> dict[str, Settled]:
        """review_task_completed for each decision reviewers made on a task consodam opened, at the moment
        they made it. A decision on a review stands: the same version is not asked about again."""
        settled = {}
        for key in (k for k in keys if k in self.decided):
            task = self.decided[key]
            after = {
                "task_id": task.task_id,
                "milestone": task.milestone,
                "decision": task.status,
                "completed_at": task.completed_at,
                "how": "on the task",
            }
            identity = f"{task.task_id}|{task.status}|{task.completed_at}"
            at = parse_ts(task.completed_at) if task.completed_at else None
            final = task.kind == "review"
            settled[key] = Settled("review_task_completed", task.completed_by, after, identity, at, final)
        return settled

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        """Every task considered, named by its key: a review names its version (and that version's edition
        or work), a request its edition and requirement."""
        parts = pl.col("key").str.split("|")
        frame = pl.DataFrame({"key": list(keys)}, schema={"key": pl.String}).with_columns(
            parts.list.get(0).alias("kind"),
            parts.list.get(1).alias("subject"),
            parts.list.get(3, null_on_oob=True).alias("requirement"),
        )
        versions = self.versions.select(
            pl.col("asset_id").alias("subject"),
            pl.col("version").alias("dam_version"),
            pl.col("role").alias("version_role"),
            pl.col("isbn13").alias("version_isbn"),
            pl.col("work_id").alias("version_work"),
        )
        review = pl.col("kind") == "review"
        named = frame.join(versions, on="subject", how="left").select(
            "key",
            pl.when(review).then(pl.col("version_isbn")).otherwise(pl.col("subject")).alias("isbn13"),
            pl.when(review).then(pl.col("version_work")).alias("version_work"),
            pl.when(review).then(pl.col("subject")).alias("dam_asset_id"),
            "dam_version",
            pl.when(review).then(pl.col("version_role")).otherwise(pl.col("requirement")).alias("role"),
        )
        # A version tagged with an ISBN alone is its edition's, of that edition's work.
        works = self.editions.select("isbn13", pl.col("work_id").alias("edition_work")).unique("isbn13")
        named = (
            named.join(works, on="isbn13", how="left")
            .with_columns(pl.coalesce("version_work", "edition_work").alias("work_id"))
            .drop("version_work", "edition_work")
        )
        wanted = self.wanted.select("key", "role", PARTITION_COLUMN)
        periods = self.editions.select("work_id", pl.col("period").alias("work_period"))
        return (
            named.join(wanted, on="key", how="left", suffix="_wanted")
            .with_columns(pl.coalesce("role_wanted", "role").alias("role"))
            .drop("role_wanted")
            .join(periods.unique("work_id"), on="work_id", how="left")
            .with_columns(pl.coalesce(PARTITION_COLUMN, "work_period").alias(PARTITION_COLUMN))
            .drop("work_period")
        )
