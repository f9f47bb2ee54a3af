"""Exceptions raised by the generation engine; callers map them to run/adapter failures."""


class GenerationError(Exception):
    """Base class for every error the generation engine raises on purpose."""


class BackendUnavailable(GenerationError):
    """The chosen backend cannot be used here (package missing, unknown name)."""


class AdapterError(GenerationError):
    """An adapter is missing, incompatible with the base model, or changes nothing.

    ``adapter`` names the offending adapter so the caller can mark exactly that one as bad.
    """

    def __init__(self, adapter: str, message: str) -> None:
        super().__init__(f"adapter {adapter!r}: {message}")
        self.adapter = adapter
        self.reason = message


class AdapterMissing(AdapterError):
    """The adapter folder or its adapter_config.json / weights file does not exist."""


class AdapterIncompatible(AdapterError):
    """The adapter was trained for another base model or its shapes do not fit."""


class AdapterIneffective(AdapterError):
    """The adapter loads but does not change the model's outputs (e.g. all-zero B matrices)."""
