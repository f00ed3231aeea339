"""Each iso15118 workaround in v2g_bench.ev.compat, each shown to be needed (the stack's own behaviour
is asserted next to the patched one where that is cheap)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from v2g_bench.ev import compat

PY = sys.executable


def _root_handlers_after(code: str) -> str:
    cp = subprocess.run([PY, "-c", "import logging; logging.basicConfig(level=logging.ERROR);"
                         "before=[type(h).__name__ for h in logging.getLogger().handlers];" + code +
                         ";r=logging.getLogger();print(before==[type(h).__name__ for h in r.handlers], r.level)"],
                        capture_output=True, text=True, timeout=60)
    return cp.stdout.strip().splitlines()[-1]


def test_import_stack_keeps_root_logging():
    # the defect: importing the stack replaces root's handlers and sets root to INFO
    assert _root_handlers_after("import iso15118.evcc") != "True 40"
    assert _root_handlers_after("from v2g_bench.ev import compat; compat.import_stack()") == "True 40"


def test_send_charging_command_bpt_flag_lands_in_is_session_bpt():
    calls = []

    class Ctrl:
        @compat.fix_send_charging_command
        async def send_charging_command(self, v, i, is_precharge=False, is_session_bpt=False):
            calls.append((v, i, is_precharge, is_session_bpt))

    c = Ctrl()
    # how the -20 DCChargeLoop calls it: third argument positional = the BPT flag
    asyncio.run(c.send_charging_command(400.0, -10.0, True))
    # how every precharge caller calls it: by keyword
    asyncio.run(c.send_charging_command(400.0, 0, is_precharge=True))
    assert calls == [(400.0, -10.0, False, True), (400.0, 0, True, False)]


def test_secc_never_offers_pnc_without_tls():
    assert compat.secc_auth_modes(False, ["EIM", "PnC"]) == ["EIM"]
    assert compat.secc_auth_modes(False, ["PNC"]) == ["EIM"]
    assert compat.secc_auth_modes(True, ["EIM", "PnC"]) == ["EIM", "PNC"]


def test_evcc_picks_eim_when_pnc_offered_without_tls():
    compat.import_stack()
    compat.patch_evcc_no_pnc_without_tls()
    from iso15118.evcc.states.iso15118_20_states import AuthorizationSetup
    from iso15118.shared.messages.enums import AuthEnum
    from iso15118.shared.messages.iso15118_20.common_messages import (
        AuthorizationReq, AuthorizationSetupRes, EIMAuthSetupResParams)
    from iso15118.shared.messages.iso15118_20.common_types import MessageHeader, ResponseCode

    class Ctrl:
        async def is_cert_install_needed(self):
            return False

    class Sess:
        is_tls = False
        session_id = "0102030405060708"
        ev_controller = Ctrl()
        protocol = None
        authorization_req_message = None

    res = AuthorizationSetupRes(header=MessageHeader(session_id="0102030405060708", timestamp=1),
                                response_code=ResponseCode.OK, auth_services=[AuthEnum.PNC, AuthEnum.EIM],
                                cert_install_service=False, eim_as_res=EIMAuthSetupResParams())
    state = AuthorizationSetup.__new__(AuthorizationSetup)
    state.comm_session = Sess()
    state.check_msg_v20 = lambda m, *a, **k: m
    sent = {}
    state.create_next_message = lambda nxt, msg, *a, **k: sent.setdefault("msg", msg)
    asyncio.run(state.process_message(res))
    assert isinstance(sent["msg"], AuthorizationReq)
    assert sent["msg"].selected_auth_service == AuthEnum.EIM


@pytest.mark.parametrize("tls", [False, True])
def test_secc_lists_pnc_only_on_tls_sessions(tls):
    """The -20 SECC (config allows EIM and PnC) lists PnC in AuthorizationSetupRes on a TLS session only."""
    compat.import_stack()
    compat.patch_secc_no_pnc_without_tls()
    from iso15118.secc.states.iso15118_20_states import AuthorizationSetup
    from iso15118.shared.messages.enums import AuthEnum

    class Ctrl:
        def is_eim_authorized(self):
            return False

        async def get_supported_providers(self):
            return None

    class Cfg:
        supported_auth_options = [AuthEnum.EIM, AuthEnum.PNC]
        allow_cert_install_service = False

    class Sess:
        is_tls = False
        session_id = "0102030405060708"
        evse_controller = Ctrl()
        config = Cfg()

    Sess.is_tls = tls
    state = AuthorizationSetup.__new__(AuthorizationSetup)
    state.comm_session = Sess()
    state.expecting_auth_setup_req = True
    state.check_msg_v20 = lambda m, *a, **k: m
    sent = {}
    state.create_next_message = lambda nxt, msg, *a, **k: sent.setdefault("msg", msg)
    from iso15118.shared.messages.iso15118_20.common_messages import AuthorizationSetupReq
    from iso15118.shared.messages.iso15118_20.common_types import MessageHeader
    asyncio.run(state.process_message(AuthorizationSetupReq(header=MessageHeader(session_id="0102030405060708",
                                                                                 timestamp=1))))
    offered = list(sent["msg"].auth_services)
    assert (AuthEnum.PNC in offered) is tls, offered
    assert Cfg.supported_auth_options == [AuthEnum.EIM, AuthEnum.PNC]      # the shared config is left as it was


def test_stop_delays_are_shortened():
    compat.import_stack()
    from iso15118.shared import comm_session
    compat.patch_stop_delays(0.01, 0.01)

    class W:
        def close(self):
            pass

        async def wait_closed(self):
            pass

    class Ctl:
        async def enable_charging(self, on):
            pass

    class S:
        ev_controller = Ctl()

    class St:
        next_state = None

    class Concrete(comm_session.V2GCommunicationSession):
        def save_session_info(self):
            pass

    sess = Concrete.__new__(Concrete)
    sess.current_state, sess.comm_session, sess.writer, sess.peer_name = St(), S(), W(), ("x", 1)
    t = time.monotonic()
    asyncio.run(sess.stop("test"))
    assert time.monotonic() - t < 0.5     # the stack sleeps 2 s + 3 s here


def test_sim_ev_coin_flips_always_ready():
    compat.import_stack()
    from iso15118.evcc.controller import simulator
    from iso15118.evcc.evcc_config import EVCCConfig

    compat.patch_sim_ev_coin_flips()
    ev = simulator.SimEVController(EVCCConfig())
    results = [asyncio.run(ev.process_dynamic_se_params(None, False))[0] for _ in range(40)]
    assert all(r is not None for r in results)   # unpatched: ~half are None (coin flip)


def test_framed_reader_returns_whole_v2gtp_frames():
    f1 = bytes([1, 0xFE, 0x80, 0x01, 0, 0, 0, 3]) + b"abc"
    f2 = bytes([1, 0xFE, 0x80, 0x01, 0, 0, 0, 2]) + b"de"

    async def go(wrap):
        r = asyncio.StreamReader()
        r.feed_data(f1 + f2[:5])         # frame 1 and a split frame 2 in one segment
        out = []
        rr = compat.FramedReader(r) if wrap else r
        out.append(await rr.read(7000))
        r.feed_data(f2[5:])
        r.feed_eof()
        out.append(await rr.read(7000))
        out.append(await rr.read(7000))
        return out

    assert asyncio.run(go(False))[0] == f1 + f2[:5]        # the stack's read(7000): coalesced garbage
    assert asyncio.run(go(True)) == [f1, f2, b""]


def test_run_until_session_end_never_hangs():
    async def never_returns():
        await asyncio.sleep(3600)

    async def go():
        watch = compat.SessionEndWatch()
        t = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await compat.run_until_session_end(never_returns(), watch, 0.2)
        return time.monotonic() - t

    assert asyncio.run(go()) < 2.0


def test_session_end_watch_resolves_on_stop_notification():
    compat.import_stack()
    from iso15118.shared.notifications import StopNotification

    async def handler(q):
        q.put_nowait(StopNotification(True, "done", None))
        await asyncio.sleep(3600)      # what the EVCC handler does after a session: keeps running

    async def go():
        watch = compat.SessionEndWatch()
        return await compat.run_until_session_end(handler(watch), watch, 5)

    assert asyncio.run(go()).reason == "done"


def test_secc_dc_parameter_discovery_keeps_the_ac_session_limits():
    compat.import_stack()
    from iso15118.secc.controller.evse_data import EVSEDataContext
    from iso15118.shared.messages.enums import ServiceV20
    from iso15118.shared.messages.iso15118_20.common_types import RationalNumber as R
    from iso15118.shared.messages.iso15118_20.dc import DCChargeParameterDiscoveryResParams

    params = DCChargeParameterDiscoveryResParams(
        evse_max_charge_power=R(exponent=3, value=11), evse_min_charge_power=R(exponent=0, value=0),
        evse_max_charge_current=R(exponent=0, value=30), evse_min_charge_current=R(exponent=0, value=0),
        evse_max_voltage=R(exponent=0, value=500), evse_min_voltage=R(exponent=0, value=150))

    class Res:
        dc_params = params

    def run() -> bool:
        from iso15118.secc.controller.evse_data import EVSEACCLLimits, EVSESessionLimits

        mine = EVSEACCLLimits()                      # fresh objects: the stack's defaults are shared
        mine.max_charge_power = 11000.0
        ctx = EVSEDataContext(session_limits=EVSESessionLimits(ac_limits=mine))
        ctx.update_dc_charge_parameters_v20(ServiceV20.DC, Res())
        return ctx.session_limits.ac_limits is mine and mine.max_charge_power == 11000.0

    compat.patch_secc_keep_ac_limits()
    patched = EVSEDataContext.update_dc_charge_parameters_v20
    assert run()                                               # patched: the AC limits survive
    EVSEDataContext.update_dc_charge_parameters_v20 = patched.__wrapped__   # the stack's own method
    try:
        assert not run()                                       # the defect: AC limits dropped
    finally:
        EVSEDataContext.update_dc_charge_parameters_v20 = patched
