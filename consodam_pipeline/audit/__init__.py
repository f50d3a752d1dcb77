"""The audit of everything: the full answer for one edition as of any moment (`answer`), the compliance report
(`report`) and the read-only command (`cli`). The package imports nothing, so `consodam audit` loads neither
Dagster nor polars."""
