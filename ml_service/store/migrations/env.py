"""Alembic's entry point: run the migrations on the connection the store hands over."""

from __future__ import annotations

from alembic import context

from ml_service.store.tables import metadata

# The store opens the database itself (SQLite pragmas, PostgreSQL lock) and passes the
# connection in; there is no alembic.ini and no URL here.
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot alter most of a table in place; batch mode copies it when a step must.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
