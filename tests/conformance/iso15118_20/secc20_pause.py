"""ISO 15118-20 SECC: pause and resume (rows need the DUT's `Pause` claim).

The EV emulator's stack (iso15118 0.31.2) cannot pause on its own ("TODO Implement also a mechanism for pausing"
in its EVCC), so the stimulus is the misbehaviour injection: the first session's SessionStopReq goes out with
ChargingSession=Pause; the next session's SessionSetupReq carries the paused session's ID (resume) or another
non-zero ID. The resume happens seconds after the pause, well within any allowed window. See secc20_rows.py."""
from __future__ import annotations

import json

from v2g_bench.conformance import Case, step
from v2g_bench.conformance.iso15118_steps import answered, ev_session, session_of
from v2g_bench.errors import Inconclusive, Nonconformance

from secc20_rows import STANDARD

PAUSE_REQ = ("ISO15118-20", "DC_BPT", "Pause")


def _pause(_original):
    from iso15118.shared.messages.iso15118_20.common_messages import ChargingSession
    return ChargingSession.PAUSE


class _AskedId:
    """The SessionID the resuming EV puts in its SessionSetupReq (set by a step from the paused session)."""

    def __init__(self, flip: bool):
        self.flip, self.value = flip, None

    def __call__(self, _original):
        if self.value is None:
            raise RuntimeError("no paused SessionID recorded")
        return self.value


def _setup_res(ctx, name: str) -> dict:
    res = session_of(ctx, name)
    with open(res.trace_path, encoding="utf-8") as f:
        rows = [json.loads(x) for x in f if x.strip()]
    got = [r for r in rows if r.get("dir") == "rx" and r.get("name") == "SessionSetupRes"]
    if not got:
        raise Inconclusive(f"the {name} session got no SessionSetupRes ({res.step}: {res.reason[:200]})")
    return got[0]["decoded"]["SessionSetupRes"]


def _paused(asked: _AskedId):
    def run(ctx):
        res = session_of(ctx, "paused")
        with open(res.trace_path, encoding="utf-8") as f:
            rows = [json.loads(x) for x in f if x.strip()]
        stop = [r for r in rows if r.get("dir") == "rx" and r.get("name") == "SessionStopRes"]
        if not stop:
            raise Nonconformance(f"the SessionStopReq (Pause) got no SessionStopRes ({res.step}: "
                                 f"{res.reason[:200]})", req="V2G20-1633")
        code = stop[0]["decoded"]["SessionStopRes"].get("ResponseCode")
        if code != "OK":
            raise Nonconformance(f"SessionStopReq (ChargingSession=Pause) answered {code}, not OK", req="V2G20-1633")
        sid = _setup_res(ctx, "paused")["Header"]["SessionID"]
        asked.value = sid if not asked.flip else f"{int(sid, 16) ^ 0xFFFF_FFFF:016X}"
        ctx.attach("paused-session", {"session_id": sid, "resume_with": asked.value})
    return run


def _same_id(ctx):
    body = _setup_res(ctx, "resumed")
    old = _setup_res(ctx, "paused")["Header"]["SessionID"]
    if body["Header"]["SessionID"] != old:
        raise Nonconformance(f"the resumed session got SessionID {body['Header']['SessionID']}, not the paused "
                             f"session's {old}", req="V2G20-2622")


def _new_id(asked: _AskedId):
    def run(ctx):
        body = _setup_res(ctx, "resumed")
        sid = body["Header"]["SessionID"]
        old = _setup_res(ctx, "paused")["Header"]["SessionID"]
        ctx.attach("session-ids", {"paused": old, "asked": asked.value, "answered": sid})
        if sid in (asked.value, old) or int(sid, 16) == 0:
            raise Nonconformance(f"SessionSetupReq with an unknown SessionID {asked.value} got SessionID {sid}: "
                                 "not a new session", req="V2G20-2626")
    return run


def _stimulus(asked: _AskedId) -> list:
    return [ev_session(save_as="paused", timeout_s=40,
                       misbehave=("mutate", "SessionStopReq", {"path": "charging_session", "value": _pause})),
            step("the SECC answers SessionStopReq (Pause) OK", _paused(asked), req="V2G20-1633"),
            ev_session(save_as="resumed", timeout_s=40,
                       misbehave=("mutate", "SessionSetupReq", {"path": "header.session_id", "value": asked}))]


def pause_cases() -> list[Case]:
    joined, other = _AskedId(flip=False), _AskedId(flip=True)
    return [
        Case("ISO20_SessionSetup_resume_paused", title="after SessionStop(Pause), SessionSetupReq with the paused "
             "SessionID: OK_OldSessionJoined, the same SessionID", standard=STANDARD, block="Pause/resume",
             side="SECC", covers=("V2G20-2622", "V2G20-2623", "V2G20-1633"), requires=PAUSE_REQ,
             description="Fails against iso15118 0.31.2: its -20 SessionSetup compares the EV's SessionID with the "
                         "new TCP connection's (empty) session, so a paused session is never joined.",
             steps=[*_stimulus(joined),
                    answered("SessionSetupRes", ResponseCode="OK_OldSessionJoined", of="resumed", req="V2G20-2622"),
                    step("the resumed session keeps the paused SessionID", _same_id, req="V2G20-2622")]),
        Case("ISO20_SessionSetup_resume_unknown", title="after SessionStop(Pause), SessionSetupReq with another "
             "non-zero SessionID: OK_NewSessionEstablished with a new SessionID", standard=STANDARD,
             block="Pause/resume", side="SECC", covers=("V2G20-2626", "V2G20-2627"), requires=PAUSE_REQ,
             steps=[*_stimulus(other),
                    answered("SessionSetupRes", ResponseCode="OK_NewSessionEstablished", of="resumed",
                             req="V2G20-2626"),
                    step("a new SessionID, neither the asked nor the paused one", _new_id(other), req="V2G20-2626")]),
    ]
