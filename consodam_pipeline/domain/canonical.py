"""One text form for structured values: compact JSON with sorted keys, UTF-8 kept.

Equal values give equal text, so states compare as strings, content hashes and event ids derive from it,
and the three report formats show the same text (polars' `struct.json_encode` gives the same for sorted
fields).
"""

import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
