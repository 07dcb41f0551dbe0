"""Adaptive micro-batching: concurrent requests for one model version share a predict call.

One worker per version takes the first waiting request, drains whatever else is already
queued (up to ``max_batch_rows``) and runs one ``predict`` in a thread, never on the event
loop. While that call runs, new requests queue up and form the next batch, so the batch
size follows the load by itself: an idle server adds no wait at all, a busy one amortises
the per-call cost of the model over many rows. ``max_wait_ms`` optionally holds a batch
that has already started to fill a little longer, which helps models whose cost barely
grows with the batch.

If a batched call fails, its requests are retried one by one so that one bad request fails
alone instead of taking its neighbours down.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from threadline.serving import tensors

Tensors = dict[str, np.ndarray]
PredictFn = Callable[[Mapping[str, np.ndarray]], Tensors]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_rows: int = 64
    max_wait_ms: float = 0.0


@dataclass
class _Pending:
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: asyncio.Future[Tensors] = field(repr=False)


Observer = Callable[[int, int], None]  # (rows in the batch, requests in the batch)


class MicroBatcher:
    def __init__(self, predict: PredictFn, executor: Executor, policy: BatchPolicy = BatchPolicy(),
                 observe: Observer | None = None) -> None:
        self._predict = predict
        self._executor = executor
        self._policy = policy
        self._observe = observe
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None  # a request too big for the last batch leads the next
        self._worker: asyncio.Task[None] | None = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, inputs: Mapping[str, np.ndarray], rows: int) -> Tensors:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inputs, rows, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [p for p in batch if not p.future.done()]  # cancelled by a client that left
            if not live:
                continue
            if self._observe:
                self._observe(sum(p.rows for p in live), len(live))
            try:
                outputs = await loop.run_in_executor(self._executor, _predict_batch, self._predict, live)
            except Exception:  # noqa: BLE001 - one bad request must not fail its neighbours
                await self._one_by_one(live)
                continue
            for pending, result in zip(live, outputs):
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _collect(self) -> list[_Pending]:
        first, self._carry = self._carry or await self._queue.get(), None
        batch, rows = [first], first.rows
        limit = self._policy.max_batch_rows
        deadline = time.monotonic() + self._policy.max_wait_ms / 1000
        while rows < limit:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if len(batch) == 1 or remaining <= 0:
                    break  # no queue: no added wait
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if rows + item.rows > limit:
                self._carry = item
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for pending in batch:
            try:
                result = await loop.run_in_executor(self._executor, self._predict, pending.inputs)
            except Exception as exc:  # noqa: BLE001 - handed to the request that caused it
                if not pending.future.done():
                    pending.future.set_exception(exc)
            else:
                if not pending.future.done():
                    pending.future.set_result(result)


def _predict_batch(predict: PredictFn, batch: list[_Pending]) -> list[Tensors]:
    if len(batch) == 1:
        return [predict(batch[0].inputs)]
    outputs = predict(tensors.concat_rows([p.inputs for p in batch]))
    return tensors.split_rows(outputs, [p.rows for p in batch])
