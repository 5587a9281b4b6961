"""Transfers side by side: a registry's blobs are sent or copied a few at a time, and the first failure stops
what has not started yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait


def run_all(tasks: Sequence[Callable[[], None]], max_workers: int, name: str) -> None:
    """Runs `tasks` on up to `max_workers` threads (named `name`); the first failure cancels the tasks not
    started and is raised once the running ones end."""
    if len(tasks) <= 1 or max_workers <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=min(max_workers, len(tasks)), thread_name_prefix=name) as pool:
        futures = [pool.submit(task) for task in tasks]
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            error = future.exception() if future.done() and not future.cancelled() else None
            if error is not None:
                raise error
