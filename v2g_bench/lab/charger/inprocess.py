"""The simulated station in the caller's process: a real `Plant` and the station service on their
own event-loop thread, its control-port ops called directly. For unit tests of the station and
for driving it by hand next to the CSMS console; the virtual lab runs the same service."""
from __future__ import annotations

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.lab.plant import Plant


class _Ops:
    """The piece of the lab's service context the station uses: a registry of control-port ops."""

    def __init__(self):
        self.ops: dict = {}

    def register_op(self, name, fn):
        self.ops[name] = fn


class InProcessStation:
    def __init__(self, cfg: dict | None = None):
        from v2g_bench.lab.charger.station import start_service
        self.loop = LoopThread("station-inprocess")
        self.plant = Plant()
        self.ctx = _Ops()
        try:
            self.svc = self.loop.run(start_service(self.plant, dict(cfg or {}), self.ctx), 5)
        except BaseException:
            self.loop.stop()
            raise

    def op(self, name: str, timeout: float = 15.0, **args):
        return self.loop.run(self.ctx.ops[name](**args), timeout)

    def close(self) -> None:
        try:
            self.loop.run(self.svc.stop(), 10)
        finally:
            self.loop.stop()

    def __enter__(self) -> "InProcessStation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
