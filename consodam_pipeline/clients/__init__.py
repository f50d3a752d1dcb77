"""HTTP clients for Consonance and OpenText DAM: timeouts, retries, auth refresh, bounded concurrency."""
