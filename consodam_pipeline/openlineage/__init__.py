"""OpenLineage for every materialization: run events built from a finished run's steps (`events`), the
datasets each step read and wrote (`steps`). The sensors that send them are in defs/lineage/."""
