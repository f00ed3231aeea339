"""Drivers that record what the Bench does to them, for the harness' own tests (no hardware)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from v2g_bench.errors import SafeStateError
from v2g_bench.roles import RoleDriver

LOG = Path(os.environ.get("V2G_TEST_RECORD", "/tmp/v2g-record.jsonl"))


def record(**kw) -> None:
    with open(LOG, "a") as f:
        f.write(json.dumps(kw) + "\n")


class RecordingSource(RoleDriver):
    """Plays a power role: output on after open; safe_state turns it off and says so."""
    roles = ("battery", "analyzer", "meter", "charger", "dut", "grid")
    transport = "visa"
    required_limits = ("voltage_max_v",)

    def __init__(self, cfg):
        self.cfg, self.output_on = cfg, False

    @classmethod
    def open(cls, cfg, ctx):
        if cfg.options.get("fail_open"):
            raise ConnectionRefusedError(f"{cfg.resource}: connection refused")
        d = cls(cfg)
        d.output_on = True
        record(role=cfg.role, step="open")
        return d

    def identify(self):
        return f"REC,Source,{self.cfg.role},1.0"

    def safe_state(self):
        if self.cfg.options.get("fail_safe"):
            record(role=self.cfg.role, step="safe_state_failed")
            raise SafeStateError("output did not turn off")
        self.output_on = False
        record(role=self.cfg.role, step="safe_state", output_on=self.output_on)

    def close(self):
        record(role=self.cfg.role, step="close")


class RecordingEV(RecordingSource):
    roles = ("ev", "csms")
    transport = "iso15118"
    required_limits = ()
