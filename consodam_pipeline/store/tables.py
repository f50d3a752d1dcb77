"""Polars frames as Parquet under a base path (a local folder by default; any URL polars can write).

dagster-polars 0.27 cannot read under polars 2 (it passes arguments polars removed), so this small IO
manager does the round trip itself. A partitioned asset materialized for several partitions in one
run returns one frame with a `partition_key` column; it is split into one file per partition.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import dagster as dg
import polars as pl

from consodam_pipeline.store.engine import default_home

PARTITION_COLUMN = "partition_key"


def default_tables_path() -> str:
    return os.environ.get("CONSODAM_TABLES_PATH", str(default_home() / "tables"))


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def write_parquet(frame: pl.DataFrame | pl.LazyFrame, path: str) -> None:
    """A frame, or a plan streamed to the file (never whole in memory). A plan may read the file it
    replaces: the new one is written aside and moved over it at the end."""
    if _is_local(path):
        target = Path(path.removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # one per writer
        _write(frame, str(tmp))
        tmp.replace(target)  # readers never see half a file
    else:
        _write(frame, path)


# zstd at level 1 rather than polars' default 3: on the DAM's snapshot (354k versions) the file came out no
# larger (31.8 against 32.8 MB), written in 0.68 s against 0.94 s, read back as fast.
ZSTD_LEVEL = 1


def _write(frame: pl.DataFrame | pl.LazyFrame, path: str) -> None:
    if isinstance(frame, pl.LazyFrame):
        # Small row groups keep the writer's buffers small; readers lose nothing measurable.
        frame.sink_parquet(path, engine="streaming", row_group_size=20_000, compression_level=ZSTD_LEVEL)
    else:
        frame.write_parquet(path, compression_level=ZSTD_LEVEL)


def read_parquet(path: str) -> pl.DataFrame:
    return scan_parquet(path).collect()


def scan_parquet(path: str) -> pl.LazyFrame:
    """A file, or a partitioned asset's folder of files (every partition)."""
    folder = Path(path.removeprefix("file://"))
    if _is_local(path) and folder.is_dir():
        return pl.scan_parquet(sorted(folder.glob("*.parquet")))
    return pl.scan_parquet(path)


def exists(path: str) -> bool:
    return Path(path.removeprefix("file://")).exists() if _is_local(path) else True


class PolarsParquetIOManager(dg.ConfigurableIOManager):
    base_path: str = ""

    def _root(self) -> str:
        return (self.base_path or default_tables_path()).rstrip("/")

    def path_for(self, asset_key: dg.AssetKey, partition: str | None = None) -> str:
        stem = "/".join(asset_key.path)
        return (
            f"{self._root()}/{stem}.parquet"
            if partition is None
            else f"{self._root()}/{stem}/{partition}.parquet"
        )

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | pl.LazyFrame | None) -> None:
        if obj is None:
            return
        if not context.has_asset_partitions:
            write_parquet(obj, self.path_for(context.asset_key))
            return
        obj = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
        keys = list(context.asset_partition_keys)
        if len(keys) == 1 and PARTITION_COLUMN not in obj.columns:
            write_parquet(obj, self.path_for(context.asset_key, keys[0]))
            return
        parts = obj.partition_by(PARTITION_COLUMN, as_dict=True, include_key=False)
        empty = obj.clear().drop(PARTITION_COLUMN)
        for key in keys:
            write_parquet(parts.get((key,), empty), self.path_for(context.asset_key, key))

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        """A pl.LazyFrame input gets a scan (only what the consumer selects is read); else a frame."""
        key = context.asset_key
        if not context.has_asset_partitions:
            if context.dagster_type.typing_type is pl.LazyFrame:
                return scan_parquet(self.path_for(key))
            return read_parquet(self.path_for(key))
        lazy = context.dagster_type.typing_type is pl.LazyFrame
        frames: list[pl.DataFrame | pl.LazyFrame] = []
        for partition in context.asset_partition_keys:
            path = self.path_for(key, partition)
            if exists(path):
                part = scan_parquet(path) if lazy else read_parquet(path)
                frames.append(part.with_columns(pl.lit(partition).alias(PARTITION_COLUMN)))
        if not frames:
            return pl.LazyFrame() if lazy else pl.DataFrame()
        return pl.concat(frames, how="diagonal_relaxed")  # type: ignore[type-var]
