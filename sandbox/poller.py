"""A background thread calling `step()` every `poll_s` seconds while used as a context manager
(the sandbox replicators)."""
from __future__ import annotations

import threading


class Poller:
    poll_s: float = 0.2

    def step(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.poll_s)
