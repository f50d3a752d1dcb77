"""A local Consonance: GraphQL at /graphql (Bearer key) and the legacy REST v4 products list (Token key);
its schema, the GraphQL resolvers and mutations, and the HTTP server with people at work, a module each.

Field and argument names follow the vendor's published GraphQL schema (`products(productSearch: ...)`
with keyset `after`, `changedSince`, `isbn13In`, publication-date ranges, `onix21ProductFormCodeIn`;
`updateProduct`). Where the public record is silent the sandbox adds, and marks below as conventions:
the `limit` page size, `salesEmbargoDate`, `rowSalesRightsTypeCode`, `projectStageName`, `updatedAt`,
the supporting-resource mutations used to link DAM assets back to a title, and the workflow: a product's
`todos` (Consonance's to-dos, `milestone` flagged, due relative to publication, with a done date), the
ordered `projectStages`, the stage write `updateProduct(input: {id, projectStageName})` (one of those
stages), and `productionFiles` per product with `createProductionFile` / `deleteProductionFile` (the
vendor documents DeleteProductionFile, not the type's fields).
"""
