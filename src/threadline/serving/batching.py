"""Adaptive micro-batching: concurrent requests for one model version share a predict call.

Each version has one model thread of its own, so the model never runs on the event loop.
The thread takes the first waiting request, drains whatever else is already queued (up to
``max_batch_rows``) and runs one ``predict``. While that call runs, new requests queue up and
form the next batch, so the batch size follows the load by itself: an idle server adds no
wait at all, a busy one amortises the per-call cost of the model over many rows.
``max_wait_ms`` optionally holds a batch that has already started to fill a little longer,
which helps models whose cost barely grows with the batch.

If a batched call fails, its requests are retried one by one so that one bad request fails
alone instead of taking its neighbours down.

The hand-off between the event loop and the model thread is a fixed cost of every
prediction. ``asyncio``'s executor hop (a ``concurrent.futures`` future chained to an asyncio
one, woken through ``call_soon_threadsafe``) took about 85 µs per call on one core; this one
about 25 µs. Each side is woken by a pipe write only while it sleeps; a write lets go of the
GIL during the system call, so the woken thread can run at once; and when the model thread
finishes before the submitting coroutine has the GIL back (the usual case on one core), the
result is taken without a pipe at all.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from threadline.domain import errors
from threadline.serving import tensors

Tensors = dict[str, np.ndarray]
PredictFn = Callable[[Mapping[str, np.ndarray]], Tensors]
Observer = Callable[[int, int], None]  # (rows in the batch, requests in the batch)


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_rows: int = 64
    max_wait_ms: float = 0.0


@dataclass(eq=False)
class _Pending:
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: asyncio.Future[Tensors] = field(repr=False)


class _Wakeup:
    """A pipe that wakes one sleeping side; writes never block and repeated ones merge.

    ``blocking`` is for a thread that sleeps in ``wait``: one ``read`` both sleeps and clears.
    Without it the read end suits an event loop's ``add_reader``, with ``clear`` as the callback.
    """

    def __init__(self, *, blocking: bool) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, blocking)
        os.set_blocking(self._write_fd, False)
        self._poller = select.poll()  # not select(): any fd number works
        self._poller.register(self.read_fd, select.POLLIN)

    def set(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:  # full: a wake-up is pending anyway
            pass

    def clear(self) -> None:
        try:
            os.read(self.read_fd, 4096)
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None) -> None:
        """Sleep until ``set`` (or ``timeout`` seconds) and clear; blocking pipes only."""
        if timeout is None or self._poller.poll(math.ceil(timeout * 1000)):
            os.read(self.read_fd, 4096)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self._write_fd)


@dataclass(eq=False)
class _Link:
    """What joins a batcher to the event loop it serves, from the first ``submit`` to ``close``."""

    loop: asyncio.AbstractEventLoop
    to_model: _Wakeup = field(default_factory=lambda: _Wakeup(blocking=True))
    to_loop: _Wakeup = field(default_factory=lambda: _Wakeup(blocking=False))
    thread: threading.Thread | None = None


class MicroBatcher:
    """Batches ``submit`` calls into ``predict`` calls on a model thread of its own.

    The thread and its pipes start with the first ``submit``, on that call's event loop;
    ``close`` stops them and fails whatever is still waiting.
    """

    def __init__(self, predict: PredictFn, policy: BatchPolicy = BatchPolicy(),
                 observe: Observer | None = None, *, name: str = "predict") -> None:
        self._predict = predict
        self._policy = policy
        self._observe = observe
        self._name = name
        self._waiting: deque[_Pending] = deque()  # appended on the loop, taken by the model thread
        self._finished: deque[tuple[_Pending, Tensors | Exception]] = deque()  # the other way
        self._carry: _Pending | None = None  # a request too big for the last batch leads the next
        self._sleeping = False  # the model thread waits for work: the next submit must wake it
        self._listening = True  # the loop waits on the pipe for results: the model thread must write
        self._closing = False
        self._link: _Link | None = None

    @property
    def queue_depth(self) -> int:
        return len(self._waiting) + (self._carry is not None)

    async def submit(self, inputs: Mapping[str, np.ndarray], rows: int) -> Tensors:
        link = self._link or self._start()
        future: asyncio.Future[Tensors] = link.loop.create_future()
        self._waiting.append(_Pending(inputs, rows, future))
        if self._sleeping:  # checked after the append: a thread about to sleep re-checks the queue
            self._sleeping = False
            # The write lets go of the GIL, and the woken model thread often runs the whole call
            # before this thread has it back: its results are then taken here, without a pipe.
            self._listening = False
            try:
                link.to_model.set()
            finally:
                self._listening = True
            if self._finished:
                self._hand_over()
        return await future

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        self._closing = True
        link.to_model.set()
        if link.thread is not None:
            await asyncio.to_thread(link.thread.join)
        link.loop.remove_reader(link.to_loop.read_fd)
        self._deliver(link.to_loop)
        for pending in [*self._waiting, *([self._carry] if self._carry else [])]:
            if not pending.future.done():
                pending.future.set_exception(errors.ConfigurationError("the server is shutting down"))
        self._waiting.clear()
        self._carry = None
        link.to_model.close()
        link.to_loop.close()

    def _start(self) -> _Link:
        self._closing = False
        link = self._link = _Link(asyncio.get_running_loop())
        link.loop.add_reader(link.to_loop.read_fd, self._deliver, link.to_loop)
        link.thread = threading.Thread(target=self._serve, args=(link,), name=self._name, daemon=True)
        link.thread.start()
        return link

    def _deliver(self, wakeup: _Wakeup) -> None:
        """On the loop, when woken: clear the pipe first, so that a result posted meanwhile is
        either taken now or leaves a wake-up behind."""
        wakeup.clear()
        self._hand_over()

    def _hand_over(self) -> None:
        """On the loop: hand finished results to their requests."""
        while self._finished:
            pending, outcome = self._finished.popleft()
            if pending.future.done():  # cancelled by a client that left
                continue
            if isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    # ----------------------------------------------------------------- the model thread

    def _serve(self, link: _Link) -> None:
        while not self._closing:
            if not self._waiting and self._carry is None:
                self._sleep(link, None)
                continue
            batch = [p for p in self._collect(link) if not p.future.done()]
            if not batch:
                continue
            try:
                self._finished.extend(self._run(batch))
            except Exception as exc:  # noqa: BLE001 - e.g. the observer: fail the batch, not the thread
                self._finished.extend((pending, exc) for pending in batch)
            if self._listening:  # checked after posting: a submit in its write looks afterwards
                link.to_loop.set()

    def _sleep(self, link: _Link, timeout: float | None) -> None:
        """Wait for a submit (or ``timeout``); announce it first, then re-check the queue."""
        self._sleeping = True
        if not self._waiting and not self._closing:
            link.to_model.wait(timeout)
        self._sleeping = False

    def _collect(self, link: _Link) -> list[_Pending]:
        first, self._carry = self._carry or self._waiting.popleft(), None
        batch, rows = [first], first.rows
        limit, wait = self._policy.max_batch_rows, self._policy.max_wait_ms / 1000
        deadline = time.monotonic() + wait if wait else 0.0
        while rows < limit:
            if not self._waiting:
                if len(batch) == 1 or not wait or self._closing:
                    break  # no queue: no added wait
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._sleep(link, remaining)
                continue
            item = self._waiting.popleft()
            if rows + item.rows > limit:
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        return batch

    def _run(self, batch: list[_Pending]) -> list[tuple[_Pending, Tensors | Exception]]:
        if self._observe:
            self._observe(sum(p.rows for p in batch), len(batch))
        if len(batch) == 1:
            return [(batch[0], self._one(batch[0]))]
        try:
            outputs = self._predict(tensors.concat_rows([p.inputs for p in batch]))
            return list(zip(batch, tensors.split_rows(outputs, [p.rows for p in batch])))
        except Exception:  # noqa: BLE001 - one bad request must not fail its neighbours
            return [(pending, self._one(pending)) for pending in batch]

    def _one(self, pending: _Pending) -> Tensors | Exception:
        try:
            return self._predict(pending.inputs)
        except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
            return exc
