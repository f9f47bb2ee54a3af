"""The API's operations, read from the OpenAPI schema drf-spectacular generates."""

from __future__ import annotations

import re
from functools import cache

METHODS = ("get", "post", "put", "patch", "delete")


@cache
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def operations() -> list[tuple[str, str]]:
    """Every (METHOD, path template) of the public schema, in a stable order."""
    return sorted(
        (method.upper(), path)
        for path, item in schema()["paths"].items()
        for method in item
        if method in METHODS
    )


def param_prefix(path: str) -> str | None:
    """The template up to its first parameter: '/api/v1/adapters/{id}/status/' -> '/api/v1/adapters/{id}'."""
    match = re.search(r"\{[^}]+\}", path)
    return path[: match.end()] if match else None


def fill(path: str, value: str) -> str:
    """Put the value in the path's first (and only) parameter."""
    assert path.count("{") <= 1, f"{path}: more than one path parameter; extend tests/security/schema.fill"
    return re.sub(r"\{[^}]+\}", value, path)
