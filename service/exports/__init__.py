"""The export of safe aggregates: stored result tables to Parquet files or SQL tables, one run at a time."""
