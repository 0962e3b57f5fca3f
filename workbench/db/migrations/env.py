"""Alembic environment: migrations run online against the URL the caller put in the config."""

from alembic import context

from workbench.db.engine import make_engine
from workbench.db.tables import metadata

config = context.config
engine = make_engine(config.attributes["url"], pool_size=1)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
