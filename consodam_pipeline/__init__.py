"""consodam: keeps Consonance and OpenText Core DAM in step, with a lineage store that proves what happened."""

import os

# Polars allocates through jemalloc, which by default keeps freed pages for ten seconds. An ingest frees
# page after page while it fetches, so RSS grew with freed memory; purging at once keeps it near what
# is live. Set before polars loads (jemalloc reads it once); an operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0")
