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


PARAM = re.compile(r"\{([^}]+)\}")


def param_names(path: str) -> list[str]:
    """The path's parameters, in order: '/api/v1/projects/{slug}/judge-endpoints/{name}/' -> [slug, name]."""
    return PARAM.findall(path)


def param_prefix(path: str) -> str | None:
    """The template up to its last parameter, which names the object: '/api/v1/adapters/{id}/status/' ->
    '/api/v1/adapters/{id}'; '/api/v1/projects/{slug}/judge-endpoints/{name}/' -> the whole but '/'."""
    matches = list(PARAM.finditer(path))
    return path[: matches[-1].end()] if matches else None


def fill(path: str, *values: str) -> str:
    """Put the values in the path's parameters, one each, in order."""
    assert len(values) == path.count("{"), f"{path}: {len(values)} value(s) for {param_names(path)}"
    given = iter(values)
    return PARAM.sub(lambda _: next(given), path)
