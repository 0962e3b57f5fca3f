"""The edge: protocols in, validated points out to PostgreSQL (can run alone as ``workbench ingest``)."""
