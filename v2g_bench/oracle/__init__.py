"""The independent oracle: captures judged by our own EXI codec and our own rules (docs/iso15118-suite.md).

    from v2g_bench.oracle import analyze
    report = analyze("ev.pcap", trace="v2gtp-trace.jsonl")
"""
from __future__ import annotations

__all__ = ["analyze", "read_capture", "Report", "Violation"]


def __getattr__(name: str):
    # lazy: scapy and the codec load only when used
    if name in ("analyze", "Report", "Violation"):
        import importlib

        # the submodule and the function share the name "analyze": import the module by its full name
        return getattr(importlib.import_module("v2g_bench.oracle.analysis"), name)
    if name == "read_capture":
        from v2g_bench.oracle.capture import read_capture

        return read_capture
    raise AttributeError(name)
