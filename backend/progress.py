"""A dependency-free progress bar for long work (folders, corpus builds, training).

Writes to stderr only when it is a terminal (or when forced), so logs and CI output stay clean;
callers that want progress in another UI (the Blender status bar) pass `on_update` instead.
"""

import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


class Progress:
    """Count `done` out of `total` and redraw a one-line bar at most every `min_interval` seconds."""

    def __init__(self, total: int, description: str = "", stream=None, enabled: Optional[bool] = None,
                 on_update: Optional[Callable[[int, int], None]] = None, min_interval: float = 0.1):
        self.total = max(int(total), 0)
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.on_update = on_update
        self.min_interval = min_interval
        self.done = 0
        self._start = time.monotonic()
        self._last_draw = 0.0

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self.on_update is not None:
            self.on_update(self.done, self.total)
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= self.min_interval or self.done >= self.total):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = self.done / self.total if self.total else 1.0
        width = 30
        filled = int(round(width * min(fraction, 1.0)))
        elapsed = now - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        self.stream.write(f"\r{self.description} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} {elapsed:5.1f}s elapsed, {eta:5.1f}s left")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable[T], total: Optional[int] = None, description: str = "",
             **kwargs) -> Iterator[T]:
    """Iterate over `items`, showing a bar; `total` defaults to len(items)."""
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, description, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()
