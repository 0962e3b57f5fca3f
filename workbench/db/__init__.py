"""Storage: engine, tables, migrations, the embedded server."""
