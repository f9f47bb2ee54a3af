"""Receivers of other apps' signals."""

from __future__ import annotations

from typing import Any


def adapter_registered_start_recipe(sender: Any, *, adapter_id: int, **kwargs: Any) -> None:
    """An adapter version was registered (API, CLI or the watched folder): start the project's recipe."""
    from evalhub.continuous.models import Recipe
    from evalhub.continuous.tasks import start_recipe

    if Recipe.objects.filter(project__adapters=adapter_id, enabled=True).exists():
        start_recipe.delay(adapter_id=adapter_id)
