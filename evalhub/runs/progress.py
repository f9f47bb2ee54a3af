"""In-process progress listeners: the CLI's progress bar follows a run executing eagerly in process.

With a broker the CLI polls the database instead; this only matters when tasks run in the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[int], None]

_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener(run_id)` after every saved batch of outputs while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def notify(run_id: int) -> None:
    for listener in list(_listeners):
        listener(run_id)
