"""Prepared GraphQL queries: a query text is parsed and validated once, and a query whose only resolvers are
its root fields is answered by projecting what those resolvers return onto the selection, with a function
compiled for that selection.

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


class _Compiler:
    """Python source for a selection's projection, compiled once per query text: one function per object
    selection, its fields read and converted inline (a closure per field costs a call per value)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"NotPlain": NotPlain, "_null": _null, "_not_a_dict": _not_a_dict}
        self.functions = 0

    def constant(self, value: Any) -> str:
        name = f"c{len(self.names)}"
        self.names[name] = value
        return name

    def value(
        self, kind: graphql.GraphQLOutputType, selection: graphql.SelectionSetNode | None, v: str
    ) -> str:
        """An expression projecting the value named `v` onto `kind`."""
        if isinstance(kind, graphql.GraphQLNonNull):
            return f"(_null() if {v} is None else {self.present(kind.of_type, selection, v)})"
        return f"(None if {v} is None else {self.present(kind, selection, v)})"

    def present(
        self, kind: graphql.GraphQLOutputType, selection: graphql.SelectionSetNode | None, v: str
    ) -> str:
        if isinstance(kind, graphql.GraphQLList):
            item = f"i{len(self.names)}_{self.functions}"
            self.functions += 1
            return f"[{self.value(kind.of_type, selection, item)} for {item} in {v}]"
        if isinstance(kind, graphql.GraphQLScalarType | graphql.GraphQLEnumType):
            serialize = self.constant(kind.serialize)
            exact = {"String": "str", "Int": "int", "Boolean": "bool", "Float": "float"}.get(kind.name)
            return f"({v} if type({v}) is {exact} else {serialize}({v}))" if exact else f"{serialize}({v})"
        if isinstance(kind, graphql.GraphQLObjectType) and selection is not None:
            return f"{self.object(kind, selection)}({v})"
        raise NotPlain(f"{kind} is abstract")

    def object(self, kind: graphql.GraphQLObjectType, selection: graphql.SelectionSetNode) -> str:
        fields: list[tuple[str, str, graphql.GraphQLField | None, graphql.FieldNode]] = []
        for node in selection.selections:
            if not isinstance(node, graphql.FieldNode) or node.directives or node.arguments:
                raise NotPlain("fragments, directives and arguments below the root")
            name, key = node.name.value, (node.alias or node.name).value
            field = None if name == "__typename" else kind.fields.get(name)
            if name != "__typename" and (field is None or field.resolve is not None):
                raise NotPlain(f"{kind.name}.{name} has its own resolver")
            fields.append((key, name, field, node))
        if len({key for key, *_ in fields}) != len(fields):
            raise NotPlain("a key selected twice is merged by the executor")
        function = f"project_{kind.name}_{self.functions}"
        self.functions += 1
        body, items = [], []
        for number, (key, name, field, node) in enumerate(fields):
            if field is None:
                items.append(f"{key!r}: {kind.name!r}")
                continue
            body.append(f"    v{number} = value.get({name!r})")
            items.append(f"{key!r}: {self.value(field.type, node.selection_set, f'v{number}')}")
        self.lines += [
            f"def {function}(value):",
            f"    if not isinstance(value, dict): _not_a_dict(value, {kind.name!r})",
            *body,
            f"    return {{{', '.join(items)}}}",
            "",
        ]
        return function

    def compile(
        self, kind: graphql.GraphQLOutputType, selection: graphql.SelectionSetNode | None
    ) -> Projection:
        expression = self.value(kind, selection, "value")
        self.lines += ["def project(value):", f"    return {expression}"]
        source = compile("\n".join(self.lines), "<projection>", "exec")
        exec(source, self.names)  # names from the schema; keys (the query's) only as repr() literals
        projection: Projection = self.names["project"]
        return projection


def _null() -> Any:
    raise NotPlain("null where the schema says non-null")


def _not_a_dict(value: Any, type_name: str) -> Any:
    raise NotPlain(f"a {type(value).__name__} where {type_name} is read from a dict")


def _projection(kind: graphql.GraphQLOutputType, selection: graphql.SelectionSetNode | None) -> Projection:
    return _Compiler().compile(kind, selection)


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
