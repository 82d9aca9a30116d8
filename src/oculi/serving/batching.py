"""Dynamic batching: requests for one model variant wait in a bounded queue; one worker thread takes up to
``max_batch_size`` of them at a time and runs the model once for all.

The wait is adaptive. A batch goes to the model as soon as the model is free unless more requests for the same
variant are already on their way (admitted, still being read or decoded); only then does it wait for them, at most
``max_latency_ms`` counted from the oldest request's arrival. So a lone request never waits, and under load the
requests that arrive while the model is busy form the next batch by themselves.

The queue is bounded: :meth:`Batcher.reserve` refuses a request (:class:`Overloaded`, HTTP 503) when
``max_queue_size`` requests are already decoding or queued, before its body is read. The model runs in the worker
thread, never on the server's event loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from oculi.errors import OculiError


class Overloaded(OculiError):
    """The server or a variant's queue is full; the client should retry after ``retry_after`` seconds."""

    http_status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Served:
    """What a request gets back: the model's ``result`` for its image, the ``batch_size`` it ran in and how long
    it waited in the queue (``queue_seconds``)."""

    result: Any
    batch_size: int
    queue_seconds: float


@dataclass
class _Item:
    image: Any
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


BatchObserver = Callable[[int, float, Sequence[float]], None]


class Batcher:
    """Runs ``predict`` (a list of inputs → a list of results, one per input) on batches of concurrent requests.

    ``observe(batch_size, model_seconds, queue_seconds_per_request)`` is called after every batch (for metrics).
    Use: :meth:`reserve` (may raise :class:`Overloaded`) → decode → :meth:`submit` (or :meth:`release` when the
    request fails before reaching the model) → await the returned future."""

    def __init__(self, predict: Callable[[list[Any]], list[Any]], name: str, max_batch_size: int,
                 max_latency_ms: float, max_queue_size: int, observe: BatchObserver | None = None) -> None:
        self.predict = predict
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.max_queue_size = max_queue_size
        self.observe = observe
        self._items: deque[_Item] = deque()
        self._incoming = 0  # reserved, not yet submitted (the body is being read or decoded)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.seconds_per_image = 0.05  # running estimate, for Retry-After

    @property
    def depth(self) -> int:
        """Requests held: queued for the model plus admitted and still decoding."""
        with self._cond:
            return len(self._items) + self._incoming

    def start(self) -> None:
        """Start the worker thread."""
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"oculi-batcher-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def reserve(self) -> None:
        """Hold a place for a request about to be decoded; raises :class:`Overloaded` when the variant already
        holds ``max_queue_size`` requests."""
        with self._cond:
            held = len(self._items) + self._incoming
            if held >= self.max_queue_size or self._stopping:
                backlog = held * self.seconds_per_image / max(1, self.max_batch_size) * 2
                raise Overloaded(f"variant {self.name} is at capacity ({held} requests queued or decoding, limit "
                                 f"{self.max_queue_size}); retry later or raise max_queue_size.",
                                 retry_after=max(1, round(backlog)))
            self._incoming += 1

    def release(self) -> None:
        """Give back a place taken by :meth:`reserve` for a request that will not be submitted."""
        with self._cond:
            self._incoming -= 1
            self._cond.notify_all()

    def submit(self, image: Any) -> Future:
        """Queue a decoded input (its place was reserved); the future resolves to a :class:`Served`."""
        item = _Item(image)
        with self._cond:
            self._incoming -= 1
            self._items.append(item)
            self._cond.notify_all()
        return item.future

    def _next_batch(self) -> list[_Item] | None:
        with self._cond:
            while not self._items and not self._stopping:
                self._cond.wait()
            if not self._items:
                return None
            deadline = self._items[0].arrived + self.max_latency
            while len(self._items) < self.max_batch_size and self._incoming > 0 and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self.max_batch_size, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            live = [item for item in batch if item.future.set_running_or_notify_cancel()]  # skip abandoned ones
            if not live:
                continue
            started = time.monotonic()
            waits = [started - item.arrived for item in live]
            try:
                results = self.predict([item.image for item in live])
                if len(results) != len(live):
                    raise RuntimeError(f"the model returned {len(results)} results for {len(live)} inputs")
            except BaseException as e:  # noqa: BLE001 - every waiting request gets the error, the worker lives on
                for item in live:
                    item.future.set_exception(e)
                continue
            seconds = time.monotonic() - started
            self.seconds_per_image = 0.8 * self.seconds_per_image + 0.2 * seconds / len(live)
            for item, result, wait in zip(live, results, waits, strict=True):
                item.future.set_result(Served(result, len(live), wait))
            if self.observe is not None:
                self.observe(len(live), seconds, waits)
