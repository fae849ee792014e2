"""A worker of its own for requests that only matter while they are the newest of their sender (the point editor's
live previews): one thread runs them one at a time, off the server's event loop and apart from the loop's shared
default executor; a sender's waiting request is dropped, answered :data:`SUPERSEDED` at once, when a newer one
comes; at most ``max_waiting`` senders wait, further ones are answered :data:`BUSY` without queueing."""
import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

SUPERSEDED = "superseded"
BUSY = "busy"


class _Job:
    def __init__(self, work: Callable[[], Any], answer: asyncio.Future):
        self.work, self.answer = work, answer


def _deliver(answer: asyncio.Future, done: Future) -> None:
    if answer.done():  # superseded or given up meanwhile
        return
    if done.exception() is not None:
        answer.set_exception(done.exception())
    else:
        answer.set_result(done.result())


class NewestWins:
    def __init__(self, max_waiting: int, name: str):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()  # guards _waiting between the loop and the worker thread
        self._waiting: dict[str, _Job] = {}  # sender -> its request that has not started
        self.max_waiting = max_waiting

    def has_room(self, sender: str) -> bool:
        """Whether a request of ``sender`` would be queued now (it may replace its own waiting one)."""
        with self._lock:
            return sender in self._waiting or len(self._waiting) < self.max_waiting

    async def run(self, sender: str, work: Callable[[], Any]) -> Any:
        """``work()``'s result (its exception raised here), or SUPERSEDED, or BUSY."""
        loop = asyncio.get_running_loop()
        job = _Job(work, loop.create_future())
        with self._lock:
            older = self._waiting.get(sender)
            if older is None and len(self._waiting) >= self.max_waiting:
                return BUSY
            self._waiting[sender] = job
        if older is not None:
            older.work = None  # its body is not needed any more
            if not older.answer.done():  # (its client may have just gone)
                older.answer.set_result(SUPERSEDED)
        started = self._executor.submit(self._start, sender, job)
        started.add_done_callback(lambda done: loop.call_soon_threadsafe(_deliver, job.answer, done))
        try:
            return await job.answer
        except asyncio.CancelledError:  # the client went away: drop the request if it has not started
            self._forget(sender, job)
            raise

    def _forget(self, sender: str, job: _Job) -> None:
        with self._lock:
            if self._waiting.get(sender) is job:
                del self._waiting[sender]

    def _start(self, sender: str, job: _Job) -> Any:
        with self._lock:
            if self._waiting.get(sender) is not job:
                return SUPERSEDED  # replaced or given up before its turn: already answered
            del self._waiting[sender]
            work, job.work = job.work, None
        return work()
