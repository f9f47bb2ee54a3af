"""The PostgreSQL database a benchmark creates for itself and drops afterwards."""

from __future__ import annotations


def recreate_database(pg: str, name: str, *, drop_only: bool = False) -> None:
    """Drop database ``name`` on server ``pg`` (a URL with no database) and create it empty again.

    Only plain names (letters, digits, underscores) are accepted: the name goes into the SQL.
    """
    import psycopg

    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing odd database name {name!r}")
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
