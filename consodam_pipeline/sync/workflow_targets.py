"""The F2 write targets: a title's project stage in Consonance, and review tasks in the DAM.

- stage: one slot per edition (its product id), always there; state `{"stage": …}`; written with the
  stage convention `updateProduct(input: {id, projectStageName})`, a full state, safe to repeat.
- review tasks: one slot per natural key — `review|<asset version>|<milestone>` (a decision wanted on one
  version) or `request|<ISBN>|<milestone>|<requirement>` (an asset wanted that the DAM lacks or cannot
  use); state is what identifies the task; opening is a create (looked up after an ambiguous reply), and
  a task nobody needs any more is cancelled with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consodam_pipeline.clients.consonance import ConsonanceClient
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.clients.opentext_dam import DamClient, ReviewTask
from consodam_pipeline.sync.engine import Found, Outcome, WriteTarget, state_json

STAGE_FIELD = "project_stage"  # the edition record's column the stage write sets (for the echo journal)


def stage_state(stage: str | None) -> str:
    return state_json({"stage": stage})


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
        return Found(
            found.key,
            found.handle,
            stage_state(product.get("projectStageName")),
            None,
            product.get("updatedAt"),
        )

    def create(self, client: ConsonanceClient, key: str, state: str) -> Found:
        raise ApiError(f"POST /graphql updateProduct {key}", 1, "the edition is not in Consonance")

    def delete(self, client: ConsonanceClient, found: Found) -> None:
        raise ApiError(f"POST /graphql updateProduct {found.key}", 1, "a stage is moved on, never removed")

    def journal_fields(self, done: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
        return {o.result.handle: {STAGE_FIELD: json.loads(o.result.state)["stage"]} for o in done if o.result}


def task_key(task: ReviewTask) -> str:
    if task.kind == "request":
        return f"request|{task.isbn}|{task.milestone}|{task.requirement}"
    return f"review|{task.asset_id}|{task.milestone}"


def task_state(
    kind: str,
    milestone: str,
    *,
    asset_id: str | None = None,
    isbn: str | None = None,
    requirement: str | None = None,
) -> str:
    if kind == "request":
        return state_json({"kind": kind, "isbn": isbn, "milestone": milestone, "requirement": requirement})
    return state_json({"kind": kind, "asset_id": asset_id, "milestone": milestone})


def task_found(task: ReviewTask) -> Found:
    state = task_state(
        task.kind, task.milestone, asset_id=task.asset_id, isbn=task.isbn, requirement=task.requirement
    )
    return Found(task_key(task), task.task_id, state)


@dataclass
class ReviewTaskTarget(WriteTarget[DamClient]):
    notes: Mapping[str, str] = field(default_factory=dict)  # key → why the task is opened (said once)
    isbns: Mapping[str, str] = field(default_factory=dict)  # review key → the edition it is opened for
    reasons: Mapping[str, str] = field(default_factory=dict)  # key → why a task is no longer needed
    entity: str = "dam_review_task"
    written_event: str = "review_task_opened"
    removed_event: str = "review_task_closed"
    system: str = "dam"

    def create(self, client: DamClient, key: str, state: str) -> Found:
        wanted = {**json.loads(state), "note": self.notes.get(key)}
        wanted.setdefault("isbn", self.isbns.get(key))
        return task_found(client.open_review_task(**wanted))

    def update(self, client: DamClient, found: Found, state: str) -> Found:
        raise NotImplementedError("tasks are opened and cancelled, never edited")  # decide() never asks

    def delete(self, client: DamClient, found: Found) -> None:
        client.cancel_review_task(found.handle, f"no longer needed: {self.reasons.get(found.key, 'moot')}")

    def lookup(self, client: DamClient, key: str) -> list[Found]:
        return [task_found(t) for t in client.review_tasks("open") if task_key(t) == key]
