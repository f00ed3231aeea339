"""OCPP charging-station suite words on top of the core vocabulary (`v2g_bench.conformance.ocpp`):

    tc("TC_K_01_CS", "title", block="K", covers=(...), steps=[...])   a row: OCPP, both versions, connected first
    actions_available()              given: every DUT action the case needs can be performed (else skipped)
    started(save_as="started")       stimulus+expect: a transaction starts (DUT action) and Started is seen
    set_profile(1, "TxProfile", [(0, -4000)], id=10, tx=V("started..."))   the CSMS installs a charging profile
    seq_nos_continuous("started")    the transaction's seqNo run 0..n, no gap, in order (E11/E12)
    report("NotifyReport", 7)        the station's report for requestId 7: every part, in order, tbc to the end
    commanded([(0, 5000), (10, 0)])  the profile's power as a CommandedProfile from now (for judge.power_follows)
    let_run(s)                        the profile itself is the stimulus: time passes (bounded)
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from v2g_bench.conformance import ocpp
from v2g_bench.conformance.case import Case
from v2g_bench.conformance.match import check_fields
from v2g_bench.conformance.steps import Step
from v2g_bench.errors import CaseDefinitionError, Nonconformance

BLOCKS = {"A": "A Security", "B": "B Provisioning", "E": "E Transactions", "F": "F Remote control",
          "G": "G Availability", "K": "K Smart charging", "P": "P DataTransfer", "Q": "Q Bidirectional (V2X)",
          "R": "R DER control"}
BOTH = ("2.0.1", "2.1")


def tc(case_id: str, title: str, *, block: str, steps: list[Step], covers: tuple[str, ...] = (),
       versions: tuple[str, ...] = BOTH, given: list[Step] | None = None, connect: bool = True, **kw) -> Case:
    """A charging-station case row: standard OCPP, the block's name, the TC ID among the covered IDs, the
    station connected (and the DUT actions checked) before the steps."""
    pre = [actions_available(), csms_defaults()] + ([ocpp.connected()] if connect else []) + list(given or [])
    return Case(case_id, title=title, standard="OCPP", block=BLOCKS[block], covers=(case_id, *covers),
                versions=versions, given=pre, steps=[*steps, conformant()], side="CS", **kw)


class conformant(Step):  # noqa: N801
    """Every frame the station sent during the case kept OCPP-J and the schemas (no invalid frame, no
    duplicate messageId): a violation fails the case, naming the frame and the rule."""

    kind = "expect"
    name = "every frame from the station kept OCPP-J and the OCPP schemas"

    def run(self, ctx):
        time.sleep(0.1)           # a frame sent with the last one expected is read before judging
        try:
            ctx.csms.assert_conformant()
        except Nonconformance as e:
            raise Nonconformance(str(e), req=e.req or ctx.case.covers[0]) from None


class csms_defaults(Step):  # noqa: N801
    """Given: the CSMS answers with its defaults (answers a previous case arranged and did not use up, e.g. a
    CALLERROR for the next 5 TransactionEvents, must not leak into this one)."""

    kind = "given"
    name = "the CSMS answers with its defaults"
    req = None

    def run(self, ctx):
        ctx.csms.clear_overrides()


class actions_available(Step):  # noqa: N801
    """Given: the bench can perform every DUT action this case needs; otherwise the case is skipped with
    the reason (a station without a way to be unplugged is not failed for it)."""

    kind = "given"
    name = "the bench can perform the case's DUT actions"

    def run(self, ctx):
        if not ctx.case.actions:
            return
        from v2g_bench.dut.actions import missing
        why = missing(ctx, ctx.case.actions)
        if why:
            pytest.skip(why)


def started(save_as: str = "started", *, trigger: str | None = None, req=None, within_s: float = 15.0,
            **action_kw) -> list[Step]:
    fields: dict[str, Any] = {"eventType": "Started"}
    if trigger:
        fields["triggerReason"] = trigger
    return [ocpp.dut_action("start_transaction", **action_kw),
            ocpp.expect("TransactionEvent", fields, within_s=within_s, save_as=save_as, req=req)]


def set_profile(evse_id: int, purpose: str, periods: list[tuple[int, float]], *, id: int, stack: int = 0,  # noqa: A002
                tx: Any = None, save_as: str = "answer", unit: str = "W", kind: str = "Absolute",
                duration_s: int | None = None, edit=None, req=None) -> Step:
    """SetChargingProfile built in the row's version (2.0.1: negative limit = discharge; 2.1: CentralSetpoint
    with setpoint/dischargeLimit); `edit(profile)` may change the built profile (a case that sends a wrong one)."""
    def payload(ctx):
        prof = ctx.csms.charging_profile(id, purpose, periods, stack_level=stack, kind=kind, unit=unit,
                                         transaction_id=ctx.resolve(tx), duration_s=duration_s)
        if edit is not None:
            edit(prof)
        ctx.vars["profile_sent"] = prof          # commanded() anchors the power judgement on its start
        return {"evseId": evse_id, "chargingProfile": prof}
    s = ocpp.call("SetChargingProfile", payload, save_as=save_as, req=req)
    s.name = f"CSMS sets a {purpose} (id {id}, stack {stack}) on EVSE {evse_id}: {periods}"
    return s


class seq_nos_continuous(Step):  # noqa: N801
    """Every TransactionEvent of the transaction saved as `started`: seqNo 0, 1, 2 … without gap, in
    the order received (E11.FR.07 / E12)."""

    kind = "expect"

    def __init__(self, started: str = "started", *, req="E12.FR.06", min_events: int = 2, offline_flag: bool = False):
        self.started, self.req, self.min_events, self.offline_flag = started, req, min_events, offline_flag
        self.name = "the transaction's seqNo run 0..n without gap, in order" + (
            "; events queued offline carry offline=true" if offline_flag else "")

    def run(self, ctx):
        tx = ctx.vars[self.started]["transactionInfo"]["transactionId"]
        frames = [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == 2 and f.action == "TransactionEvent"
                  and (f.payload.get("transactionInfo") or {}).get("transactionId") == tx]
        seqs = [f.payload.get("seqNo") for f in frames]
        ctx.attach("seqNo", seqs)
        if len(seqs) < self.min_events:
            raise Nonconformance(f"only {len(seqs)} TransactionEvent(s) of transaction {tx}: {seqs}", req=self.reqs())
        uniq = sorted(set(seqs))
        if seqs != sorted(seqs) or uniq != list(range(len(uniq))):
            raise Nonconformance(f"seqNo of transaction {tx} in arrival order: {seqs} (must run 0, 1, 2, … without "
                                 f"gap)", req=self.reqs())
        if self.offline_flag:
            if not any(f.payload.get("offline") is True for f in frames):
                raise Nonconformance("no TransactionEvent of the transaction carries offline=true although events "
                                     "were generated while the station was offline", req="E04.FR.03")


class report(Step):  # noqa: N801
    """The station's report (NotifyReport / ReportChargingProfiles / ReportDERControl) for `request_id`:
    every part arrives, seqNo 0..n in order where the message has one, the last with tbc false; the parts'
    items are saved (flattened) as `save_as`."""

    kind = "expect"

    def __init__(self, action: str, request_id: int, *, items: str, within_s: float = 15.0, req=None,
                 save_as: str = "report"):
        self.action, self.request_id, self.items_key, self.within_s = action, request_id, items, within_s
        self.req, self.save_as = req, save_as
        self.name = f"the station sends its {action} for requestId {request_id} (all parts) within {within_s:g} s"

    def run(self, ctx):
        items: list = []
        parts = []
        deadline = time.monotonic() + self.within_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Nonconformance(f"{self.action} for requestId {self.request_id}: {len(parts)} part(s) within "
                                     f"{self.within_s:g} s, the last still had tbc=true" if parts else
                                     f"no {self.action} for requestId {self.request_id} within {self.within_s:g} s",
                                     req=self.reqs())
            try:
                f = ctx.csms.expect(self.action, where=lambda fr: fr.payload.get("requestId") == self.request_id,
                                    timeout=left)
            except Nonconformance as e:
                raise Nonconformance(str(e), req=self.reqs()) from None
            parts.append(f.payload)
            got = f.payload.get(self.items_key) or []
            items.extend(got if isinstance(got, list) else [got])
            if not f.payload.get("tbc", False):
                break
        seqs = [p["seqNo"] for p in parts if "seqNo" in p]
        if seqs and seqs != list(range(len(seqs))):
            raise Nonconformance(f"{self.action} parts' seqNo: {seqs}", req=self.reqs())
        ctx.attach(f"{self.action} ({len(parts)} parts)", parts)
        ctx.save(self.save_as, items)


class report_has(Step):  # noqa: N801
    """The saved report items include an item with these fields (or, with `none=True`, none has them)."""

    kind = "expect"

    def __init__(self, want: dict, *, of: str = "report", req=None, none: bool = False, count: int | None = None):
        self.want, self.of, self.req, self.none, self.count = want, of, req, none, count
        self.name = (f"no item of the report has {want}" if none else f"the report has an item with {want}") + (
            f" ({count} items)" if count is not None else "")

    def run(self, ctx):
        from v2g_bench.conformance.match import matches
        items = ctx.vars.get(self.of)
        if items is None:
            raise CaseDefinitionError(f"report_has: nothing saved as {self.of!r}")
        hit = [i for i in items if matches(i, ctx.resolve(self.want))]
        if self.count is not None and len(items) != self.count:
            raise Nonconformance(f"the report has {len(items)} items, expected {self.count}", req=self.reqs())
        if self.none and hit:
            raise Nonconformance(f"the report has {hit[0]} although it must not", req=self.reqs())
        if not self.none and not hit:
            raise Nonconformance(f"no item of the report ({len(items)} items) matches {self.want}; first items: "
                                 f"{items[:3]}", req=self.reqs())


class commanded(Step):  # noqa: N801
    """The power the case commands, from now (the profile was just accepted): a CommandedProfile saved for
    judge.power_follows. Periods in the bench sign (+ charge, - discharge), W."""

    kind = "stimulus"

    def __init__(self, periods: list[tuple[float, float]], *, until_s: float, save_as: str = "commanded"):
        self.periods, self.until_s, self.save_as = periods, until_s, save_as
        self.name = f"commanded DC power {periods} for {until_s:g} s"
        self.req = None

    def run(self, ctx):
        from v2g_bench.verification.compliance import CommandedProfile
        t0 = time.monotonic()
        sched = (ctx.vars.get("profile_sent") or {}).get("chargingSchedule", [{}])[0]
        if "startSchedule" in sched:
            # anchored on the profile's own start (wall clock of the CSMS), not on when this step ran: the
            # station applies the profile from its startSchedule, however late the bench gets here
            import datetime as dt
            start = dt.datetime.fromisoformat(sched["startSchedule"].replace("Z", "+00:00"))
            t0 -= (dt.datetime.now(dt.timezone.utc) - start).total_seconds()
        ctx.save(self.save_as, CommandedProfile.from_steps([(t0 + a, w) for a, w in self.periods], t0 + self.until_s))
        ctx.vars[f"{self.save_as}_end"] = t0 + self.until_s


class let_run(Step):  # noqa: N801
    """The commanded profile is the stimulus: the bench lets it run until the saved end (or `seconds`)."""

    kind = "stimulus"

    def __init__(self, seconds: float | None = None, *, until: str = "commanded"):
        self.seconds, self.until = seconds, until
        self.name = f"the profile runs for {seconds:g} s" if seconds else f"the profile {until!r} runs to its end"
        self.req = None

    def run(self, ctx):
        # to the end, plus a second so the last commanded interval is fully covered by samples
        end = time.monotonic() + self.seconds if self.seconds else ctx.vars[f"{self.until}_end"] + 1.0
        while time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))


class fn_check(Step):  # noqa: N801
    """A check of saved values by a predicate with a message (when the field matchers cannot say it)."""

    kind = "expect"

    def __init__(self, name: str, pred, message: str, *, req=None):
        self.name, self.pred, self.message, self.req = name, pred, message, req

    def run(self, ctx):
        if not self.pred(ctx):
            raise Nonconformance(self.message.format(**{k: v for k, v in ctx.vars.items()
                                                        if not k.startswith("_")}), req=self.reqs())


class csms_accepts_password(Step):  # noqa: N801
    """Bench set-up: the CSMS emulator accepts this Basic-auth password for the station from now on
    (the case is about to give it to the station)."""

    kind = "stimulus"

    def __init__(self, password: str):
        self.password = password
        self.name = "the CSMS accepts the new BasicAuthPassword"
        self.req = None

    def run(self, ctx):
        opts = ctx.bench_profile.roles["csms"].options
        ctx.csms.server.options.stations[opts["station_id"]] = self.password


def answer_fields(got: dict, want: dict, req) -> None:
    check_fields(got, want, req=req, what="the answer")
