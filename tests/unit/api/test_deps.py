"""Request dependencies: database work runs in threads, bounded below the connection pool."""

from __future__ import annotations

import threading
import time

import anyio

from einvoice.api import deps
from einvoice.store import engine


def test_database_work_is_bounded_below_the_pool() -> None:
    # The pool also serves the relay, the sweeper, metrics and readiness.
    assert deps.DATABASE_CONCURRENCY + 4 <= engine.POOL_SIZE


def test_at_most_database_concurrency_calls_run_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return n

    async def main() -> list[int]:
        results: list[int] = []

        async def one(n: int) -> None:
            results.append(await deps.in_database_thread(work, n))

        async with anyio.create_task_group() as group:
            for n in range(3 * deps.DATABASE_CONCURRENCY):
                group.start_soon(one, n)
        return results

    results = anyio.run(main)
    assert sorted(results) == list(range(3 * deps.DATABASE_CONCURRENCY))
    assert peak == deps.DATABASE_CONCURRENCY
