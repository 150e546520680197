"""Pre-process upcoming images in worker threads while the model works on the current ones."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Prefetch(Generic[T, R]):
    """``fn`` applied to ``items`` up to ``ahead`` items in advance, yielded in order as futures.

    The items are taken from the iterable on the consumer's thread (so lazily read planes are
    read where the caller reads them); only ``fn`` runs in the workers. Use as a context manager:
    leaving it drops the work not started yet.
    """

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], *, ahead: int, workers: int) -> None:
        self._fn = fn
        self._items = iter(enumerate(items))
        self._ahead = max(1, ahead)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sansa-prefetch")
        self._pending: deque[tuple[int, Future[R]]] = deque()

    def __enter__(self) -> Prefetch[T, R]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self) -> None:
        while len(self._pending) < self._ahead:
            try:
                index, item = next(self._items)
            except StopIteration:
                return
            self._pending.append((index, self._pool.submit(self._fn, item)))

    def chunks(self, size: int) -> Iterator[list[tuple[int, Future[R]]]]:
        """Lists of up to ``size`` (index, future) pairs, in the items' order."""
        while True:
            self._fill()
            if not self._pending:
                return
            chunk = [self._pending.popleft() for _ in range(min(size, len(self._pending)))]
            self._fill()  # the next chunk is prepared while this one runs
            yield chunk
