"""A Dagster instance on PostgreSQL: materialize an asset, read the event back."""

import dagster as dg


def test_instance_on_postgres_records_materializations(pg_database: str) -> None:
    @dg.asset
    def tiny() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 3})

    assert pg_database.startswith("postgresql+psycopg2://")
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": pg_database}}}) as instance:
        result = dg.materialize([tiny], instance=instance)
        assert result.success
        records = instance.fetch_materializations(dg.AssetKey("tiny"), limit=5).records
        assert len(records) == 1
        assert records[0].asset_materialization is not None
        assert records[0].asset_materialization.metadata["rows"].value == 3
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
