"""An asyncio event loop in a daemon thread, so synchronous tests can drive async emulators.

Every call takes a timeout: `LoopThread.run(coro, timeout)` never blocks forever.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine


class LoopThread:
    def __init__(self, name: str = "v2g-bench-loop", *, lag_probe_s: float = 0.02):
        self.loop = asyncio.new_event_loop()
        self.lag = LagMonitor(lag_probe_s)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        if lag_probe_s > 0:
            self.submit(self.lag.run())

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Drain what is left so nothing warns about never-awaited tasks.
        pending = asyncio.all_tasks(self.loop)
        for t in pending:
            t.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine, timeout: float) -> Any:
        """Run `coro` on the loop; raise TimeoutError (and cancel it) after `timeout` seconds."""
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"operation did not finish within {timeout:g} s") from None

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class LagMonitor:
    """How late the loop ran its callbacks: a probe sleeps `period_s` and records how much later it woke.

    A frame the loop read late carries a late timestamp; the conformance engine asks `max_lag(t0, t1)` to tell
    the bench's own lateness from the charger's, and calls a late verdict inconclusive rather than failed."""

    def __init__(self, period_s: float = 0.02, keep: int = 20000):
        import collections
        self.period_s = period_s
        self._events: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)   # (t, lag)
        self._lock = threading.Lock()

    async def run(self) -> None:
        import time
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(self.period_s)
            t1 = time.monotonic()
            lag = t1 - t0 - self.period_s
            if lag > 0.005:
                with self._lock:
                    self._events.append((t1, lag))

    def max_lag(self, t0: float, t1: float) -> float:
        """The largest lateness (s) of the loop observed in [t0, t1] (a late wake-up at t covers [t - lag, t])."""
        with self._lock:
            return max((lag for t, lag in self._events if t >= t0 and t - lag <= t1), default=0.0)


async def close_server(server, timeout_s: float = 2.0) -> bool:
    """Close an asyncio (or websockets) server and wait for it, at most `timeout_s`; False if it did not finish.

    The one way every front-end and the CSMS stop their listening socket (a stuck client must not hang a stop)."""
    if server is None:
        return True
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), timeout_s)
        return True
    except asyncio.TimeoutError:
        return False

