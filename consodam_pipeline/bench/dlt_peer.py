"""dlt's `rest_api` source reading Consonance REST v4 into duckdb, as a data engineer would set it up; run as
`python -m consodam_pipeline.bench.dlt_peer WORKDIR PAGE_SIZE` with CONSONANCE_URL and CONSONANCE_API_KEY set.
Prints the number of products loaded as JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dlt
from dlt.sources.rest_api import rest_api_source


def main(workdir: Path, page_size: int) -> None:
    source = rest_api_source(
        {
            "client": {
                "base_url": os.environ["CONSONANCE_URL"] + "/api/v4/",
                "auth": {
                    "type": "api_key",
                    "name": "Authorization",
                    "api_key": f"Token token={os.environ['CONSONANCE_API_KEY']}",
                    "location": "header",
                },
                "paginator": {
                    "type": "page_number",
                    "base_page": 1,
                    "page_param": "page",
                    "total_path": "total_pages",
                },
            },
            "resources": [
                {
                    "name": "products",
                    "endpoint": {
                        "path": "products.json",
                        "params": {"per_page": page_size},
                        "data_selector": "products",
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="consonance_peer",
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "peer.duckdb")),
        dataset_name="consonance",
    )
    pipeline.run(source)
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT COUNT(*) FROM products")
    loaded = rows[0][0] if rows else 0
    print(json.dumps({"products": loaded}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
