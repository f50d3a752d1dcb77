"""The sandbox's prepared GraphQL path answers exactly what graphql-core's executor answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import graphql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consodam_pipeline.clients.consonance import PRODUCT_FIELDS
from consodam_pipeline.sandbox.catalog import CatalogSpec, seed_catalog
from consodam_pipeline.sandbox.consonance.resolvers import ConsonanceGraphQL
from consodam_pipeline.sandbox.state import CONSONANCE_DDL, DAM_DDL, StateDB

ROOTS = {  # root field: (its arguments, the variables they use)
    "products": ("(productSearch: $s, limit: $l)", "($s: ProductSearchAttributes, $l: Int)"),
    "product": ("(id: $id)", "($id: Int!)"),
    "works": ("(after: $after, limit: $l)", "($after: Int, $l: Int)"),
    "work": ("(id: $id)", "($id: Int!)"),
    "projectStages": ("", ""),
}


@pytest.fixture(scope="module")
def consonance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsonanceGraphQL]:
    tmp: Path = tmp_path_factory.mktemp("prepared")
    db, dam = StateDB(tmp / "c.sqlite", CONSONANCE_DDL), StateDB(tmp / "d.sqlite", DAM_DDL)
    seed_catalog(CatalogSpec(works=60, seed=11, anchor=date(2026, 11, 1), dirt_rate=0.05), db, dam)
    yield ConsonanceGraphQL(db, "key")
    db.close()
    dam.close()


def reference(sandbox: ConsonanceGraphQL, text: str, variables: dict[str, object]) -> str:
    result = graphql.graphql_sync(sandbox.schema, text, variable_values=variables)
    body: dict[str, object] = {"data": result.data}
    if result.errors:
        body["errors"] = [e.formatted for e in result.errors]
    return json.dumps(body)  # the text, so key order counts too


@st.composite
def selections(draw: st.DrawFn, kind: graphql.GraphQLObjectType, depth: int = 0) -> str:
    names = sorted(name for name, field in kind.fields.items() if not field.args)
    chosen = draw(st.lists(st.sampled_from([*names, "__typename"]), min_size=1, max_size=8, unique=True))
    parts = []
    for name in chosen:
        alias = draw(st.sampled_from(["", "", f"a_{name.strip('_')}: "]))
        field = kind.fields.get(name)
        inner = graphql.get_named_type(field.type) if field else None
        if isinstance(inner, graphql.GraphQLObjectType):
            if depth >= 2:
                continue
            parts.append(f"{alias}{name} {{ {draw(selections(inner, depth + 1))} }}")
        else:
            parts.append(f"{alias}{name}")
    return " ".join(parts) or "__typename"


searches = st.fixed_dictionaries(
    {},
    optional={
        "after": st.integers(-1, 200),
        "idEq": st.integers(0, 200),
        "titleCont": st.sampled_from(["a", "The", "zzz"]),
        "changedSince": st.sampled_from(["2020-01-01", "2026-10-01", "not a date"]),
        "publicationDateGt": st.sampled_from(["2024-01-01", "2027-01-01"]),
        "onix21ProductFormCodeIn": st.lists(st.sampled_from(["BB", "BC", "DG", "AJ", "XX"]), max_size=3),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prepared_answers_match_the_executor(consonance: ConsonanceGraphQL, data: st.DataObject) -> None:
    query_type = consonance.schema.query_type
    assert query_type is not None
    root = data.draw(st.sampled_from(sorted(ROOTS)))
    kind = graphql.get_named_type(query_type.fields[root].type)
    selection = f" {{ {data.draw(selections(kind))} }}" if isinstance(kind, graphql.GraphQLObjectType) else ""
    fragment = data.draw(st.booleans()) and root == "products"
    if fragment:
        selection = " { ...P }"
    arguments, declared = ROOTS[root]
    text = f"query Q{declared} {{ {root}{arguments}{selection} }}"
    if fragment:
        text += " fragment P on Product { id fullTitle work { id } }"
    variables: dict[str, object] = {
        "s": data.draw(searches),
        "l": data.draw(st.one_of(st.none(), st.integers(-5, 1200), st.just("ten"))),
        "id": data.draw(st.integers(0, 200)),
        "after": data.draw(st.one_of(st.none(), st.integers(0, 60))),
    }
    assert json.dumps(consonance.queries.execute(text, variables)) == reference(consonance, text, variables)
    assert (consonance.queries.prepare(text).roots is None) == fragment  # the fast path is what was tested


def test_the_ingest_selection_is_prepared(consonance: ConsonanceGraphQL) -> None:
    text = (
        "query Products($search: ProductSearchAttributes, $limit: Int) {"
        f" products(productSearch: $search, limit: $limit) {{ {PRODUCT_FIELDS} }} }}"
    )
    assert consonance.queries.prepare(text).roots is not None
    for after in (0, 40, 10_000):
        variables = {"search": {"after": after}, "limit": 50}
        answer = consonance.queries.execute(text, variables)
        assert json.dumps(answer) == reference(consonance, text, variables)
    assert (
        len(consonance.queries.execute(text, {"search": {"after": 0}, "limit": 50})["data"]["products"]) == 50
    )


@pytest.mark.parametrize(
    "text",
    [
        "{ products { id",  # a syntax error
        "{ products { nope } }",  # a validation error
        "mutation { deleteProductionFile(id: 999999) { errors { message } } }",  # mutations: the executor
        "query A { projectStages } query B { projectStages }",  # more than one operation, none named
    ],
)
def test_what_is_not_prepared_is_answered_by_the_executor(consonance: ConsonanceGraphQL, text: str) -> None:
    assert json.dumps(consonance.queries.execute(text, {})) == reference(consonance, text, {})
