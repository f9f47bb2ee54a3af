"""The generation engine as a worker process holds it: loaded once, kept for the next chunk.

Loading a base model and its adapters is the slow part of a chunk, so a worker keeps the last
engine it loaded and reuses it for any chunk of the same backend, base model and (a subset of the)
adapters. Nothing here imports torch until an engine is actually needed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from evalhub.generation import Backend, get_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """What an engine was loaded with: backend, base model and adapters (label -> folder, hash)."""

    backend: str
    base_folder: str
    base_hash: str
    adapters: frozenset[tuple[str, str, str]]

    def serves(self, other: EngineSpec) -> bool:
        return (
            self.backend == other.backend
            and self.base_folder == other.base_folder
            and self.base_hash == other.base_hash
            and other.adapters <= self.adapters
        )


_lock = threading.Lock()
_cached: tuple[EngineSpec, Backend] | None = None


def configured_device() -> str:
    """The ``EVALHUB_DEVICE`` setting (read at call time, never at import); the generation package's
    `resolve_device` turns it, "auto" included, into a device."""
    return str(getattr(settings, "EVALHUB_DEVICE", "auto") or "auto")


def configured_quantization() -> str:
    """The ``EVALHUB_BASE_QUANTIZATION`` setting: "none", or how bitsandbytes loads base models."""
    return str(getattr(settings, "EVALHUB_BASE_QUANTIZATION", "none") or "none")


def backend_options(name: str) -> dict[str, Any]:
    """Constructor options for a backend, from settings."""
    options: dict[str, Any] = {}
    device = configured_device()
    if name == "hf" and device != "auto":
        options["device"] = device
    if name == "hf" and configured_quantization() != "none":
        options["quantization"] = configured_quantization()
    return options


def engine_for(spec: EngineSpec) -> Backend:
    """A loaded engine serving `spec`: the cached one when it can, else a freshly loaded one.

    Raises the engine's AdapterError / GenerationError when the model or an adapter cannot load.
    """
    global _cached
    with _lock:
        if _cached is not None and _cached[0].serves(spec):
            return _cached[1]
        engine_release_locked()
        backend = get_backend(spec.backend, **backend_options(spec.backend))
        backend.load(spec.base_folder, {label: folder for label, folder, _ in sorted(spec.adapters)})
        log.info("loaded %s engine for %s with %d adapters", spec.backend, spec.base_folder, len(spec.adapters))
        _cached = (spec, backend)
        return backend


def engine_release_locked() -> None:
    global _cached
    if _cached is not None:
        try:
            _cached[1].close()
        finally:
            _cached = None


def engine_release() -> None:
    """Drop the cached engine (tests, worker shutdown, or after an engine error)."""
    with _lock:
        engine_release_locked()
