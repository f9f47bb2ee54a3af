"""Table and column names for the rater path's hand-written SQL, always read from the models.

The rater path runs a few statements as SQL rather than ORM querysets because compiling the
equivalent Exists/Subquery querysets cost more CPU than the rest of a request. Each of those statements
is the only implementation of its rule, runs on every database (only `FOR UPDATE ... SKIP LOCKED` is
added where the database has it), and names tables, columns and statuses through these helpers, so a
renamed field or table changes the SQL with it.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], field: str) -> str:
    name = getattr(model._meta.get_field(field), "column", None)
    if not name:
        raise ValueError(f"{model.__name__}.{field} has no column of its own")
    return connection.ops.quote_name(name)


def columns(model: type[Model], alias: str) -> str:
    """Every concrete column of the model, for `Model.objects.raw` to build whole instances."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)
