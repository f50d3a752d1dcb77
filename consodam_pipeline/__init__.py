"""consodam: keeps Consonance and OpenText Core DAM in step, with a lineage store that proves what happened."""
