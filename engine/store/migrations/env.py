"""Alembic environment: the engine passes its own connection in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from engine.sql.schema import metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # `alembic -x url=...` from a shell, for developers writing migrations
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///lifecycle.db")
    with create_engine(url).begin() as own:
        run(own)
