"""Reads from the catalogue."""

from __future__ import annotations

from django.db.models import QuerySet

from evalhub.accounts.models import Project
from evalhub.catalog.models import Adapter, AdapterStatus, BaseModel

DEFAULT_VERSION = "1"


def parse_adapter_label(label: str) -> tuple[str, str]:
    """'name@version' -> (name, version); a bare name means version "1" (what registration defaults to)."""
    name, _, version = label.strip().partition("@")
    return name, version or DEFAULT_VERSION


def adapter_by_label(*, project: Project, label: str) -> Adapter | None:
    """The project's adapter named by ``name@version`` (see `parse_adapter_label`), or None."""
    name, version = parse_adapter_label(label)
    return Adapter.objects.filter(project=project, name=name, version=version).first()


def adapter_list(*, project: Project) -> QuerySet[Adapter]:
    return (
        Adapter.objects.filter(project=project)
        .select_related("base_model", "parent")
        .order_by("name", "created_at")
    )


def base_model_list(*, project: Project) -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(project=project).order_by("name")


def adapter_lineage(*, adapter: Adapter) -> list[Adapter]:
    """The adapter and its ancestors, oldest first."""
    chain: list[Adapter] = []
    seen: set[int] = set()
    current: Adapter | None = adapter
    while current is not None and current.pk not in seen:
        chain.append(current)
        seen.add(current.pk)
        current = current.parent
    return list(reversed(chain))


def adapter_previous_version(*, adapter: Adapter) -> Adapter | None:
    """The newest adapter of the same name registered before this one."""
    return (
        Adapter.objects.filter(
            project_id=adapter.project_id, name=adapter.name, created_at__lt=adapter.created_at
        )
        .order_by("-created_at")
        .first()
    )


def adapter_last_approved(*, adapter: Adapter) -> Adapter | None:
    return (
        Adapter.objects.filter(
            project_id=adapter.project_id, base_model_id=adapter.base_model_id, status=AdapterStatus.APPROVED
        )
        .exclude(pk=adapter.pk)
        .order_by("-created_at")
        .first()
    )
