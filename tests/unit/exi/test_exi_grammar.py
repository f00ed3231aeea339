"""Grammar tables: generated from the installed iso15118 XSDs, cached and versioned; the runtime
does not need xmlschema."""
from __future__ import annotations

import subprocess
import sys

from v2g_bench.exi.grammar_gen import SCHEMA_SETS, cache_dir, load_tables, source_hash


def test_exi_root_element_counts_match_the_schema_facts():
    # STACKS.md: -20 CommonMessages 54 roots (incl. xmldsig's 24), DC 48, AC 42, WPT 38, ACDP 34,
    # -2 80, DIN 81, AppProtocol 2
    expected = {"iso20_common": 54, "iso20_dc": 48, "iso20_ac": 42, "iso20_wpt": 38, "iso20_acdp": 34,
                "iso2": 80, "din": 81, "appprotocol": 2, "xmldsig": 24}
    for name, n in expected.items():
        t = load_tables(name)
        assert len(t["doc"]) == n, name
        assert t["source"] == source_hash() and t["namespace"] == SCHEMA_SETS[name][1]


def test_exi_tables_are_cached_under_a_version_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("V2G_BENCH_EXI_CACHE", str(tmp_path))
    t = load_tables("appprotocol", rebuild=True)
    path = cache_dir() / "appprotocol.json"
    assert path.exists() and path.parent.name == source_hash()
    assert load_tables("appprotocol") == t


def test_exi_runtime_does_not_import_xmlschema():
    load_tables("iso20_common")  # make sure the cache exists
    code = ("import sys\nfrom v2g_bench.exi.codec import decode, encode\n"
            "m = {'SessionStopReq': {'Header': {'SessionID': '00'*8, 'TimeStamp': 1}, 'ChargingSession': 'Terminate'}}\n"
            "assert decode(encode(m, 'iso20_common'), 'iso20_common') == m\n"
            "assert 'xmlschema' not in sys.modules\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-1500:]
