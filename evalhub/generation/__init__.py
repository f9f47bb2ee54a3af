"""Django-free generation engine: one output per (adapter, case, sample), with hf or vllm.

Importing this package loads neither torch nor vllm; ``get_backend`` imports the one chosen.
"""

from evalhub.generation.errors import (
    AdapterError,
    AdapterIncompatible,
    AdapterIneffective,
    AdapterMissing,
    BackendUnavailable,
    GenerationError,
)
from evalhub.generation.interface import (
    Backend,
    FinishReason,
    GenerationConfig,
    GenerationRequest,
    GenerationResult,
    derive_seed,
    expand_requests,
)
from evalhub.generation.registry import available_backends, get_backend

__all__ = [
    "AdapterError",
    "AdapterIncompatible",
    "AdapterIneffective",
    "AdapterMissing",
    "Backend",
    "BackendUnavailable",
    "FinishReason",
    "GenerationConfig",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "available_backends",
    "derive_seed",
    "expand_requests",
    "get_backend",
]
