"""Backend registry: ``get_backend("hf")`` / ``get_backend("vllm")``, imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

from evalhub.generation.errors import BackendUnavailable
from evalhub.generation.interface import Backend

# name -> "module:class"; importing a backend's module is what pulls in torch or vllm.
BACKENDS: dict[str, str] = {
    "hf": "evalhub.generation.hf_backend:HFBackend",
    "vllm": "evalhub.generation.vllm_backend:VLLMBackend",
}


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def get_backend(name: str, **options: Any) -> Backend:
    """A new, unloaded backend instance; ``options`` go to its constructor."""
    target = BACKENDS.get(name)
    if target is None:
        raise BackendUnavailable(f"unknown generation backend {name!r}; choose one of {available_backends()}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be imported here: {exc}") from exc
    backend: Backend = getattr(module, class_name)(**options)
    return backend
