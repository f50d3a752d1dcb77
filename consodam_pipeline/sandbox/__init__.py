"""Local Consonance and OpenText DAM servers, the catalog that seeds them, activity and fault injection."""
