"""Alembic environment: the URL comes from the caller's config, never from a file in the repo."""

from __future__ import annotations

from alembic import context

from gateway.core.models import Base
from gateway.core.store import Store

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    store = Store(config.get_main_option("sqlalchemy.url"))
    try:
        with store.engine.connect() as connection:
            if store.is_postgres:
                # Several gateway processes may start at once: one migrates, the others wait.
                connection.exec_driver_sql("SELECT pg_advisory_lock(7514)")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=store.dialect == "sqlite",
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
            if store.is_postgres:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(7514)")
                connection.commit()
    finally:
        store.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
