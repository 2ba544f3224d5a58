"""SIGINT and SIGTERM while a run trains into its directory: stop at a clean point, never lose it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Cut(BaseException):
    """Raised by a signal handler to abandon work that is safe to redo (the final evaluation)."""


class StopOnSignal:
    """While training into a run directory, SIGINT and SIGTERM ask the loop to stop at its next
    clean point (``agent._stop``) instead of killing it, so a checkpoint can be written first;
    inside :meth:`cutting` they stop the work at once (:class:`Cut`).  Only the main thread can
    own signal handlers; elsewhere this does nothing."""

    NAMES = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}

    def __init__(self, agent: Any):
        self.agent = agent
        self.received: int | None = None
        self._old: dict[int, Any] = {}
        self._cutting = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum
        self.agent._stop = True
        if self._cutting:
            self._cutting = False
            raise Cut

    @contextlib.contextmanager
    def cutting(self) -> Iterator[None]:
        if self.received is not None:
            raise Cut
        self._cutting = True
        try:
            yield
        finally:
            self._cutting = False

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in self.NAMES:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
