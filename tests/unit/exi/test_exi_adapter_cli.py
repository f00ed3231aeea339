"""Drop-in for the stack (IEXICodec) without a JVM, and the `v2g-bench exi` CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from v2g_bench.exi.cli import app
from v2g_bench.exi.codec import encode

HDR = {"SessionID": "0000000000000000", "TimeStamp": 1700000000}
SETUP = {"SessionSetupReq": {"Header": HDR, "EVCCID": "WMIV1234567890ABCDEX"}}
# the stack's Java codec produced these bytes for SETUP (checked live in the differential tests)
SETUP_HEX = "808c040000000000000000080e2cfaa0620b2ba6a4ab1899199a1a9b1b9c1c9820a121a222ac00"


def test_exi_adapter_drives_the_stacks_exi_singleton_without_a_jvm():
    code = r'''
import sys
import iso15118.shared.exificient_exi_codec as ex
def _no_jvm(*a, **k): raise SystemExit("JVM codec constructed")
ex.ExificientEXICodec.__init__ = _no_jvm
from v2g_bench.exi.iso15118_adapter import install
install()
from iso15118.shared.settings import shared_settings, SettingKey
shared_settings.setdefault(SettingKey.MESSAGE_LOG_JSON, False)
shared_settings.setdefault(SettingKey.MESSAGE_LOG_EXI, False)
from iso15118.shared.exi_codec import EXI
from iso15118.shared.messages.enums import Namespace
from iso15118.shared.messages.iso15118_20.common_messages import SessionSetupReq
from iso15118.shared.messages.iso15118_20.common_types import MessageHeader
m = SessionSetupReq(header=MessageHeader(session_id="00"*8, timestamp=1700000000), evcc_id="WMIV1234567890ABCDEX")
b = EXI().to_exi(m, Namespace.ISO_V20_COMMON_MSG)
back = EXI().from_exi(b, Namespace.ISO_V20_COMMON_MSG)
assert back.evcc_id == m.evcc_id and back.header.timestamp == 1700000000
print(b.hex())
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == SETUP_HEX


def test_exi_make_codec_rejects_unknown_names():
    from v2g_bench.exi.errors import EXISchemaError
    from v2g_bench.exi.iso15118_adapter import OwnEXICodec, make_codec

    assert isinstance(make_codec("own"), OwnEXICodec)
    with pytest.raises(EXISchemaError) as ei:
        make_codec("fast")
    assert "codec" in str(ei.value)


def test_exi_cli_decode_finds_the_schema_and_encode_round_trips(tmp_path):
    runner = CliRunner()
    assert encode(SETUP, "iso20_common").hex() == SETUP_HEX
    r = runner.invoke(app, ["decode", SETUP_HEX])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["schema"] == "iso20_common" and out["message"] == SETUP
    f = tmp_path / "m.json"
    f.write_text(json.dumps(SETUP))
    r = runner.invoke(app, ["encode", str(f), "--schema", "urn:iso:std:iso:15118:-20:CommonMessages"])
    assert r.exit_code == 0 and r.output.strip() == SETUP_HEX


def test_exi_cli_bad_input_is_a_clear_error():
    runner = CliRunner()
    r = runner.invoke(app, ["decode", "80ff", "--schema", "iso20_dc"])
    assert r.exit_code == 2 and "bit" in r.output and "iso20_dc" in r.output
    r = runner.invoke(app, ["decode", "zz"])
    assert r.exit_code != 0 and "neither a file nor hex" in r.output
    r = runner.invoke(app, ["encode", '{"SessionSetupReq": {"EVCCID": 5}}', "--schema", "iso20_common"])
    assert r.exit_code == 2 and "/SessionSetupReq" in r.output
