"""Prepared GraphQL queries: a query text is parsed and validated once, and a query whose only resolvers are
its root fields is answered by projecting what those resolvers return onto the selection.

graphql-core's executor resolves every field of every product through a Python call and an awaitable check;
for the read model, where below the root every field is a key of a dict, that costs ~10× the work of reading
the rows. The projection gives the same answer (the same keys in the same order, the same scalar
serialization); anything it cannot answer exactly — mutations, fragments, directives, introspection, a null
where the schema says non-null — goes to graphql-core, which stays the reference.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import graphql
from graphql.execution.values import get_argument_values, get_variable_values

CACHED_QUERIES = 256
Projection = Callable[[Any], Any]


class NotPlain(Exception):
    """The selection or the value is outside what the projection answers exactly."""


@dataclass(frozen=True)
class RootField:
    key: str
    field: graphql.GraphQLField
    node: graphql.FieldNode
    project: Projection


@dataclass(frozen=True)
class Prepared:
    document: graphql.DocumentNode
    operation: graphql.OperationDefinitionNode | None
    errors: list[graphql.GraphQLError]
    roots: list[RootField] | None  # None: graphql-core answers it


def _leaf(kind: graphql.GraphQLScalarType | graphql.GraphQLEnumType) -> Projection:
    exact = {"String": str, "Int": int, "Boolean": bool, "Float": float}.get(kind.name)
    serialize = kind.serialize
    if exact is None:
        return serialize
    return lambda value: value if type(value) is exact else serialize(value)


def _projection(kind: graphql.GraphQLOutputType, selection: graphql.SelectionSetNode | None) -> Projection:
    nullable = not isinstance(kind, graphql.GraphQLNonNull)
    inner = kind.of_type if isinstance(kind, graphql.GraphQLNonNull) else kind
    if isinstance(inner, graphql.GraphQLList):
        item = _projection(inner.of_type, selection)

        def project_list(value: Any) -> Any:
            return [item(v) for v in value]

        base: Projection = project_list
    elif isinstance(inner, graphql.GraphQLScalarType | graphql.GraphQLEnumType):
        base = _leaf(inner)
    elif isinstance(inner, graphql.GraphQLObjectType) and selection is not None:
        base = _object(inner, selection)
    else:
        raise NotPlain(f"{inner} is abstract")

    def project(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise NotPlain("null where the schema says non-null")
        return base(value)

    return project


def _object(kind: graphql.GraphQLObjectType, selection: graphql.SelectionSetNode) -> Projection:
    fields: list[tuple[str, str, Projection | None]] = []
    for node in selection.selections:
        if not isinstance(node, graphql.FieldNode) or node.directives or node.arguments:
            raise NotPlain("fragments, directives and arguments below the root")
        name, key = node.name.value, (node.alias or node.name).value
        if name == "__typename":
            fields.append((key, name, None))
            continue
        field = kind.fields.get(name)
        if field is None or field.resolve is not None:
            raise NotPlain(f"{kind.name}.{name} has its own resolver")
        fields.append((key, name, _projection(field.type, node.selection_set)))
    if len({key for key, _, _ in fields}) != len(fields):
        raise NotPlain("a key selected twice is merged by the executor")
    type_name = kind.name

    def project_object(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise NotPlain(f"a {type(value).__name__} where {type_name} is read from a dict")
        return {
            key: type_name if project is None else project(value.get(name)) for key, name, project in fields
        }

    return project_object


def _roots(
    schema: graphql.GraphQLSchema, operation: graphql.OperationDefinitionNode
) -> list[RootField] | None:
    query = schema.query_type
    if operation.operation != graphql.OperationType.QUERY or query is None or operation.directives:
        return None
    roots = []
    try:
        for node in operation.selection_set.selections:
            if not isinstance(node, graphql.FieldNode) or node.directives:
                return None
            field = query.fields.get(node.name.value)
            if field is None or field.resolve is None:
                return None
            key = (node.alias or node.name).value
            roots.append(RootField(key, field, node, _projection(field.type, node.selection_set)))
    except NotPlain:
        return None
    return roots if len({r.key for r in roots}) == len(roots) else None


class PreparedQueries:
    def __init__(self, schema: graphql.GraphQLSchema) -> None:
        self.schema = schema
        self._cache: OrderedDict[str, Prepared] = OrderedDict()

    def prepare(self, text: str) -> Prepared:
        prepared = self._cache.get(text)
        if prepared is not None:
            self._cache.move_to_end(text)
            return prepared
        try:
            document = graphql.parse(text)
        except graphql.GraphQLError as exc:
            return Prepared(graphql.DocumentNode(definitions=()), None, [exc], None)
        errors = graphql.validate(self.schema, document)
        operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
        operation = operations[0] if len(operations) == 1 else None
        roots = _roots(self.schema, operation) if operation is not None and not errors else None
        prepared = Prepared(document, operation, list(errors), roots)
        self._cache[text] = prepared
        if len(self._cache) > CACHED_QUERIES:
            self._cache.popitem(last=False)
        return prepared

    def execute(
        self, text: str, variables: dict[str, Any] | None = None, operation_name: str | None = None
    ) -> dict[str, Any]:
        """The response body graphql-core would give, from the projection where it answers exactly."""
        if not isinstance(text, str) or not isinstance(variables, dict | None):
            return _body(graphql.graphql_sync(self.schema, text, variable_values=variables))  # its wording
        prepared = self.prepare(text)
        if prepared.errors:
            return {"data": None, "errors": [e.formatted for e in prepared.errors]}
        operation = prepared.operation
        named = operation_name is None or (
            operation is not None and operation.name is not None and operation.name.value == operation_name
        )
        if prepared.roots is not None and operation is not None and named:
            try:
                return {"data": self._project(operation, prepared.roots, variables or {})}
            except NotPlain:
                pass  # the reference answers it, errors and partial data included
        result = graphql.execute(
            self.schema, prepared.document, variable_values=variables, operation_name=operation_name
        )
        if not isinstance(result, graphql.ExecutionResult):
            raise TypeError("the sandbox's resolvers are synchronous")
        return _body(result)

    def _project(
        self, operation: graphql.OperationDefinitionNode, roots: list[RootField], variables: dict[str, Any]
    ) -> dict[str, Any]:
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            raise NotPlain("the variables have errors: the reference words them")
        data = {}
        for root in roots:
            try:
                arguments = get_argument_values(root.field, root.node, coerced)
            except graphql.GraphQLError as exc:
                raise NotPlain(str(exc)) from exc
            resolve = root.field.resolve
            assert resolve is not None
            try:
                value = resolve(None, None, **arguments)
            except Exception as exc:  # the reference turns it into a located error
                raise NotPlain(str(exc)) from exc
            try:
                data[root.key] = root.project(value)
            except (graphql.GraphQLError, TypeError, ValueError) as exc:
                raise NotPlain(str(exc)) from exc
        return data


def _body(result: graphql.ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    return payload
