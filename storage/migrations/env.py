from alembic import context
from sqlmodel import SQLModel

import storage.focus  # noqa: F401
import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import storage.surveys  # noqa: F401
import storage.targets  # noqa: F401

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
