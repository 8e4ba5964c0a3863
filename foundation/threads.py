"""Bridges between sync and async code: the one place that pumps items across a thread boundary.

The engine is async (llama-index Workflows), the LLM client and the CLI are sync, the TUI is async:
each direction is written once here and used everywhere.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Awaitable, Callable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, also when the calling thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


async def aiter_in_thread(make_iter: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Items of a blocking iterator, produced in a worker thread so the event loop stays free.

    When the consumer stops early (cancelled, or breaks out), the producer is told to stop and the
    iterator is closed in its thread, so a model stream behind it is closed too. Exceptions raised by
    the iterator reach the consumer.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(items.put_nowait, item)

    def produce() -> None:
        iterator = make_iter()
        try:
            for item in iterator:
                if stop.is_set():
                    break
                put(item)
        except BaseException as exc:  # handed to the consumer, not lost in the thread
            put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            put(_DONE)

    worker = loop.run_in_executor(None, produce)
    try:
        while (item := await items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
        await worker
    finally:
        stop.set()


def iter_in_thread(make_aiter: Callable[[], AsyncIterator[T]], name: str = "async-bridge") -> Iterator[T]:
    """Items of an async iterator for sync code: it runs on its own event loop in a daemon thread and
    items arrive as they are made. Closing the returned generator stops the async side at its next item."""
    items: queue.Queue = queue.Queue()
    stop = threading.Event()

    async def consume() -> None:
        async for item in make_aiter():
            items.put(item)
            if stop.is_set():
                break

    def run() -> None:
        try:
            asyncio.run(consume())
        except BaseException as exc:
            items.put(exc)
        finally:
            items.put(_DONE)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
