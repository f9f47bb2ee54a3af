"""Import a heavy library on first use, so collecting a test module does not pay for it.

`sm = lazy_import("statsmodels.api")` at the top of a test module costs nothing until a test reads
`sm.Logit`; collection (which every xdist worker repeats) then stays a few seconds.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


class LazyModule:
    """Stands for a module and imports it on the first public attribute read.

    Private and dunder names raise AttributeError without importing: pytest probes every
    module-level object for `__wrapped__`, `_mock_name` and the like while it collects.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_import(name: str) -> Any:
    """The module `name`, imported when a test first reads one of its public attributes."""
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return LazyModule(name)
