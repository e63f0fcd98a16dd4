"""A bounded pool of inference threads: some jobs run, a few wait, the rest are refused.

The web service decodes, predicts and encodes on these threads so that the event loop
only moves bytes. A job is admitted only while fewer than ``workers + queue_size``
jobs are pending (running or waiting); beyond that ``run`` raises ``PoolFull`` at
once, so a burst of requests gets quick refusals instead of an ever longer queue.
Cancelling the task that awaits ``run`` skips a job that has not started yet (its
client has gone, say): its slot is freed at once and no thread ever runs it.

Threads and torch: each forward pass already spreads over torch's intra-op threads
(``torch.get_num_threads()``, one per core by default). The pool does not change that
number, so with several workers the concurrent passes share the same cores; more
workers mostly overlap decoding and encoding with inference (and keep a GPU busy),
they do not multiply CPU throughput. ``OMP_NUM_THREADS`` = cores / workers in the
server's environment gives each worker its share instead: on the 2 shared cores of
BENCHMARKS.md that used less CPU per request but served fewer requests a second.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class PoolFull(Exception):
    """Every running and waiting slot of the pool is taken; try again shortly."""


@dataclass(frozen=True)
class PoolStats:
    """Jobs on a worker now (``running``), admitted but not started (``waiting``), and
    the most that may be pending at once (``capacity`` = workers + queue size)."""

    running: int
    waiting: int
    capacity: int


class InferencePool:
    """``workers`` threads and room for ``queue_size`` more jobs waiting for one."""

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers}, {queue_size}")
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="depthlens-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self._running = 0

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` on a worker thread and return its result (or raise its error).

        Raises ``PoolFull`` without queueing when ``capacity`` jobs are already pending.
        Cancelling the caller cancels a job still waiting for a thread (it never runs
        and its slot is freed); a job already running keeps its slot until it ends, so
        cancelled requests cannot let more jobs pile up than the pool admits (a job
        that should stop early must check a flag of its own).
        """
        with self._lock:
            if self._pending >= self.capacity:
                raise PoolFull(f"All {self.capacity} inference slots are taken.")
            self._pending += 1
        try:
            future = self._executor.submit(self._track, job)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return await asyncio.wrap_future(future)

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's load."""
        with self._lock:
            return PoolStats(self._running, self._pending - self._running, self.capacity)

    def shutdown(self) -> None:
        """Drop the jobs not yet started and wait for the running ones to finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _track(self, job: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        try:
            return job()
        finally:
            with self._lock:
                self._running -= 1

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
