"""Machinery the sync assets share: committing an ingest batch, and what a materialization reports."""
