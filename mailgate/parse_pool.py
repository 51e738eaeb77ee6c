"""Bulk commands read mail in a pool of processes: parsing is pure CPU, about a millisecond a mail.

The work done per mail is the caller's own top-level function (so that it pickles), applied in
worker processes; results come back in input order. Two batches are in flight at once, so the
workers parse the next batch while the caller consumes this one, and memory stays bounded however
many mails there are. Below POOL_FROM mails, or on one core, the work runs in this process: a pool
costs more to start than a few mails take.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

POOL_FROM = 200  # mails: fewer are read here
BATCH = 2_048  # mails handed to the pool at a time


def mapped_in_pool(work: Callable[[Item], Result], items: Sequence[Item], *,
                   workers: int | None = None, mails_per_item: int = 1) -> Iterator[Result]:
    """`work` applied to every item, in order; in worker processes when there are enough mails and cores."""
    workers = workers or os.cpu_count() or 1
    if workers < 2 or len(items) * mails_per_item < POOL_FROM:
        yield from map(work, items)
        return
    # fork: the workers start with this process's modules loaded; they only parse, never touch its connections
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        in_flight: deque[Iterator[Result]] = deque()
        for batch in _batches(items):
            in_flight.append(pool.map(work, batch, chunksize=max(1, len(batch) // (workers * 8))))
            if len(in_flight) > 1:
                yield from in_flight.popleft()
        while in_flight:
            yield from in_flight.popleft()


def _batches(items: Iterable[Item]) -> Iterator[list[Item]]:
    iterator = iter(items)
    while batch := list(islice(iterator, BATCH)):
        yield batch
