"""Evidence written while a test runs, attached to its Allure result when it ends.

Files go to `reports/evidence/<test id>/` as the test produces them, so a crash (or a killed
worker) still leaves them on disk; the plugin attaches every file of the folder to the Allure
result at teardown, whatever the outcome.
"""
from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

_ATTACHMENT_TYPES = {
    ".png": "image/png", ".json": "application/json", ".jsonl": "application/json",
    ".txt": "text/plain", ".log": "text/plain", ".csv": "text/csv", ".pcap": "application/vnd.tcpdump.pcap",
    ".xml": "application/xml", ".html": "text/html", ".svg": "image/svg+xml", ".keylog": "text/plain",
}


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:180]


class Evidence:
    """One test's evidence folder. `Evidence.current()` is the running test's (or None)."""

    _current: "Evidence | None" = None
    _lock = threading.Lock()

    def __init__(self, root: Path, nodeid: str):
        self.nodeid = nodeid
        self.dir = Path(root) / _safe_name(nodeid)   # created on first write
        if self.dir.exists():                        # a re-run replaces the last run's evidence
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
        self._attached: set[Path] = set()
        self.started = time.monotonic()

    # -- the running test's evidence ---------------------------------------------------------
    @classmethod
    def current(cls) -> "Evidence | None":
        return cls._current

    @classmethod
    def _set_current(cls, ev: "Evidence | None") -> None:
        with cls._lock:
            cls._current = ev

    # -- writing -----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """A file in this test's folder to stream into; attached at the end of the test."""
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def attach_text(self, name: str, text: str) -> Path:
        p = self.path(name if "." in name else name + ".txt")
        p.write_text(text)
        return p

    def attach_json(self, name: str, obj: Any) -> Path:
        p = self.path(name if name.endswith(".json") else name + ".json")
        p.write_text(json.dumps(obj, indent=2, default=str))
        return p

    def attach_png(self, name: str, data: bytes | str | Path) -> Path:
        p = self.path(name if name.endswith(".png") else name + ".png")
        if isinstance(data, (str, Path)):
            data = Path(data).read_bytes()
        p.write_bytes(data)
        return p

    def attach_file(self, src: str | Path, name: str | None = None) -> Path:
        src = Path(src)
        p = self.path(name or src.name)
        if src.resolve() != p.resolve():
            p.write_bytes(src.read_bytes())
        return p

    # -- attaching (called by the plugin) ----------------------------------------------------
    def files(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.rglob("*") if p.is_file())

    def attach_all_to_allure(self) -> int:
        """Attach every file not yet attached; returns how many. Empty files are skipped."""
        try:
            import allure
        except ImportError:  # pragma: no cover - allure-pytest is a dependency
            return 0
        n = 0
        for p in self.files():
            if p in self._attached or p.stat().st_size == 0:
                continue
            mime = _ATTACHMENT_TYPES.get(p.suffix.lower(), "application/octet-stream")
            ext = p.suffix.lstrip(".") or None
            allure.attach.file(str(p), name=str(p.relative_to(self.dir)), attachment_type=mime, extension=ext)
            self._attached.add(p)
            n += 1
        return n
