"""OCPP block K — Smart charging (profiles, stacking, clearing, reports, composite schedules, discharge):
OCTT charging-station cases as rows. Where a case commands power, the power that flows on the DC link is
measured by the analyzer and judged against the profile (judge.power_follows)."""
import datetime as dt

from v2g_bench.conformance import V, cases_test, step
from v2g_bench.conformance import judge, ocpp
from v2g_bench.conformance.match import approx, present, where
from v2g_bench.conformance.ocpp_steps import commanded, let_run, report, report_has, set_profile, started, tc

TX = V("started.transactionInfo.transactionId")


def get_profiles(request_id: int, *, evse_id=None, **criteria):
    return ocpp.call("GetChargingProfiles", {"requestId": request_id, "chargingProfile": criteria,
                                             **({} if evse_id is None else {"evseId": evse_id})})


def composite(evse_id: int = 1, duration: int = 300, unit: str = "W"):
    return ocpp.call("GetCompositeSchedule", {"evseId": evse_id, "duration": duration, "chargingRateUnit": unit},
                     save_as="composite")


def periods(*pairs):
    """The composite's chargingSchedulePeriod: (startPeriod, limit) pairs, limits to 1 W."""
    return {"schedule.chargingSchedulePeriod": [{"startPeriod": s, "limit": approx(w, abs=1.0)} for s, w in pairs]}


def first_limit(w):
    return {"schedule.chargingSchedulePeriod": where(lambda ps: abs(ps[0]["limit"] - w) <= 1.0,
                                                       f"the first period's limit is {w:g} W")}


def iso_in(seconds: float) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def start_at(seconds: float):
    def edit(p):
        p["chargingSchedule"][0]["startSchedule"] = iso_in(seconds)
    return edit


def valid(frm: float | None = None, to: float | None = None):
    def edit(p):
        if frm is not None:
            p["validFrom"] = iso_in(frm)
        if to is not None:
            p["validTo"] = iso_in(to)
    return edit


def recurring_daily(p):
    p["chargingProfileKind"] = "Recurring"
    p["recurrencyKind"] = "Daily"
    p["chargingSchedule"][0]["startSchedule"] = iso_in(-86400 - 30)
    p["chargingSchedule"][0]["duration"] = 3600


V21 = ("2.1",)


def edit_schedule(**fields):
    """Add these fields to the profile's chargingSchedule (a 2.1 feature the station may not support)."""
    def edit(p):
        p["chargingSchedule"][0].update(fields)
    return edit


def edit_periods(**fields):
    def edit(p):
        for per in p["chargingSchedule"][0]["chargingSchedulePeriod"]:
            per.update(fields)
    return edit


def smart_charging_enabled(value: str):
    return [ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "SmartChargingCtrlr"},
                                                            "variable": {"name": "Enabled"}, "attributeValue": value}]},
                      save_as="set"),
            ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}], of="set")]


def declared_unsupported(variable: str):
    """Given: the station's device model declares the feature unsupported (else the case does not apply)."""
    def check(ctx):
        import pytest
        r = ctx.csms.call("GetVariables", {"getVariableData": [{"component": {"name": "SmartChargingCtrlr"},
                                                                 "variable": {"name": variable}}]})
        res = r["getVariableResult"][0]
        if res.get("attributeStatus") == "Accepted" and res.get("attributeValue") not in ("false", ""):
            pytest.skip(f"SmartChargingCtrlr.{variable} = {res.get('attributeValue')!r}: the station supports it")
        ctx.attach(f"SmartChargingCtrlr.{variable}", res)
    return step(f"the station declares SmartChargingCtrlr.{variable} unsupported", check, kind="given")


def dynamic(interval: int | None = None, **period):
    """2.1 chargingProfileKind Dynamic (one period, updated by UpdateDynamicSchedule or pulled every
    `interval` s); the startSchedule the builder gave it is kept."""
    def edit(p):
        p["chargingProfileKind"] = "Dynamic"
        if interval is not None:
            p["dynUpdateInterval"] = interval
        p["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(period)
    return edit


def csms_pulls_answer(update: dict):
    def arrange(ctx):
        ctx.csms.respond("PullDynamicScheduleUpdate", {"status": "Accepted", "scheduleUpdate": update}, times=20)
    return step(f"the CSMS answers PullDynamicScheduleUpdate with scheduleUpdate {update}", arrange, kind="stimulus")

POWER = dict(markers=("power",), requires=("DC_BPT",))

CASES = [
    tc("TC_K_01_CS", "TxDefaultProfile on one EVSE accepted and reported back", block="K",
       covers=("K01.FR.07", "K01.FR.15"),
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=11), ocpp.answer(status="Accepted"),
              get_profiles(101, evse_id=1, chargingProfilePurpose="TxDefaultProfile"), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 101, items="chargingProfile"),
              report_has({"id": 11, "chargingProfilePurpose": "TxDefaultProfile"}, count=1)]),
    tc("TC_K_02_CS", "TxProfile without a running transaction refused", block="K",
       covers=("K01.FR.04", "K01.FR.07", "K01.FR.09"),
       steps=[set_profile(1, "TxProfile", [(0, 3000)], id=12, tx="no-such-transaction"),
              ocpp.answer(status="Rejected")]),
    tc("TC_K_03_CS", "ChargingStationMaxProfile on EVSE 0", block="K",
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 7000)], id=13), ocpp.answer(status="Accepted"),
              composite(), ocpp.answer(first_limit(7000), status="Accepted", of="composite")]),
    tc("TC_K_04_CS", "A profile with an existing id replaces the old one", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=14), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 4000)], id=14, stack=1), ocpp.answer(status="Accepted"),
              get_profiles(104, chargingProfilePurpose="TxDefaultProfile"), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 104, items="chargingProfile"),
              report_has({"id": 14, "stackLevel": 1}, count=1)]),
    tc("TC_K_05_CS", "Clear by profile id", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=15), ocpp.answer(status="Accepted"),
              ocpp.call("ClearChargingProfile", {"chargingProfileId": 15}), ocpp.answer(status="Accepted"),
              get_profiles(105, chargingProfileId=[15]), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_06_CS", "Clear by stack level and purpose", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=16, stack=3), ocpp.answer(status="Accepted"),
              ocpp.call("ClearChargingProfile", {"chargingProfileCriteria": {
                  "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 3}}), ocpp.answer(status="Accepted"),
              get_profiles(106, chargingProfilePurpose="TxDefaultProfile"), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_07_CS", "Clear with an unknown stack level / purpose", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=17, stack=1), ocpp.answer(status="Accepted"),
              ocpp.call("ClearChargingProfile", {"chargingProfileCriteria": {
                  "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 7}}), ocpp.answer(status="Unknown")]),
    tc("TC_K_08_CS", "Clear when nothing is installed", block="K",
       steps=[ocpp.call("ClearChargingProfile", {"chargingProfileId": 18}), ocpp.answer(status="Unknown")]),
    tc("TC_K_09_CS", "Clear the TxDefaultProfile while charging", block="K", actions=("start_transaction",),
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=19), ocpp.answer(status="Accepted"),
              *started(),
              ocpp.call("ClearChargingProfile", {"chargingProfileId": 19}), ocpp.answer(status="Accepted"),
              composite(), ocpp.answer(first_limit(11000), of="composite")]),
    tc("TC_K_10_CS", "TxDefaultProfile for all EVSEs (evseId 0)", block="K",
       steps=[set_profile(0, "TxDefaultProfile", [(0, 5000)], id=20), ocpp.answer(status="Accepted"),
              composite(), ocpp.answer(first_limit(5000), of="composite")]),
    tc("TC_K_11_CS", "TxProfile on evseId 0 refused", block="K", actions=("start_transaction",),
       steps=[*started(), set_profile(0, "TxProfile", [(0, 3000)], id=21, tx=TX), ocpp.answer(status="Rejected")]),
    tc("TC_K_14_CS", "Profile for a non-existent EVSE refused", block="K",
       steps=[set_profile(2, "TxDefaultProfile", [(0, 3000)], id=22), ocpp.answer(status="Rejected")]),
    tc("TC_K_16_CS", "TxProfile with an unknown transactionId refused", block="K", actions=("start_transaction",),
       steps=[*started(), set_profile(1, "TxProfile", [(0, 3000)], id=23, tx="not-this-transaction"),
              ocpp.answer(status="Rejected")]),
    tc("TC_K_19_CS", "Recurring (daily) profile applied", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 4500)], id=24, edit=recurring_daily),
              ocpp.answer(status="Accepted"),
              composite(duration=60), ocpp.answer(first_limit(4500), of="composite")]),
    tc("TC_K_21_CS", "validFrom in the future is honoured", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 4000)], id=25, edit=valid(frm=3600)),
              ocpp.answer(status="Accepted"),
              composite(duration=120), ocpp.answer(first_limit(11000), of="composite")]),
    tc("TC_K_22_CS", "validTo in the past: the profile no longer applies", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 4000)], id=26, edit=valid(frm=-7200, to=-3600)),
              ocpp.answer(status="Accepted"),
              composite(duration=120), ocpp.answer(first_limit(11000), of="composite")]),
    tc("TC_K_23_CS", "startSchedule in the future is honoured", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 4000)], id=27, edit=start_at(120)),
              ocpp.answer(status="Accepted"),
              composite(duration=300),
              ocpp.answer({"schedule.chargingSchedulePeriod": where(
                  lambda ps: abs(ps[0]["limit"] - 11000) <= 1 and any(
                      110 <= p["startPeriod"] <= 130 and abs(p["limit"] - 4000) <= 1 for p in ps),
                  "11 kW first, 4 kW from about 120 s")}, of="composite")]),
    tc("TC_K_24_CS", "Clear several profiles sharing stack level and purpose", block="K",
       steps=[set_profile(0, "TxDefaultProfile", [(0, 6000)], id=28, stack=2), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 5000)], id=29, stack=2), ocpp.answer(status="Accepted"),
              ocpp.call("ClearChargingProfile", {"chargingProfileCriteria": {
                  "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 2}}), ocpp.answer(status="Accepted"),
              get_profiles(124, chargingProfilePurpose="TxDefaultProfile"), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_29_CS", "Get profiles for evseId 0", block="K",
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 9000)], id=30), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=31), ocpp.answer(status="Accepted"),
              get_profiles(129, evse_id=0), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 129, items="chargingProfile"),
              report_has({"id": 30}, count=1)]),
    tc("TC_K_30_CS", "Get profiles for one EVSE", block="K",
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 9000)], id=32), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=33), ocpp.answer(status="Accepted"),
              get_profiles(130, evse_id=1), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 130, items="chargingProfile"),
              report_has({"id": 33}, count=1)]),
    tc("TC_K_31_CS", "Get profiles without evseId", block="K",
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 9000)], id=34), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=35), ocpp.answer(status="Accepted"),
              get_profiles(131), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 131, items="chargingProfile"),
              report_has({"id": 34}), report_has({"id": 35})]),
    tc("TC_K_32_CS", "Get profiles by profile id", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=36), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 5000)], id=37, stack=1), ocpp.answer(status="Accepted"),
              get_profiles(132, chargingProfileId=[37]), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 132, items="chargingProfile"),
              report_has({"id": 37}, count=1)]),
    tc("TC_K_33_CS", "Get profiles by EVSE and stack level", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=38, stack=4), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 5000)], id=39, stack=5), ocpp.answer(status="Accepted"),
              get_profiles(133, evse_id=1, stackLevel=5), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 133, items="chargingProfile"),
              report_has({"id": 39}, count=1)]),
    tc("TC_K_34_CS", "Get profiles by EVSE and limit source", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=40), ocpp.answer(status="Accepted"),
              get_profiles(134, evse_id=1, chargingLimitSource=["CSO"]), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 134, items="chargingProfile"),
              report_has({"id": 40}, count=1)]),
    tc("TC_K_35_CS", "Get profiles by EVSE and purpose", block="K",
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 9000)], id=41), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=42), ocpp.answer(status="Accepted"),
              get_profiles(135, evse_id=1, chargingProfilePurpose="TxDefaultProfile"), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 135, items="chargingProfile"),
              report_has({"id": 42}, count=1)]),
    tc("TC_K_36_CS", "Get profiles by EVSE, purpose and stack level", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=43, stack=1), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 5000)], id=44, stack=2), ocpp.answer(status="Accepted"),
              get_profiles(136, evse_id=1, chargingProfilePurpose="TxDefaultProfile", stackLevel=2),
              ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 136, items="chargingProfile"),
              report_has({"id": 44}, count=1)]),
    tc("TC_K_37_CS", "Remote start carrying a TxProfile", block="K",
       covers=("K05.FR.03", "E01.FR.02", "F01.FR.10", "F01.FR.13"),
       steps=[ocpp.call("RequestStartTransaction", lambda ctx: {
                  "remoteStartId": 137, "evseId": 1, "idToken": {"idToken": "K37-TOKEN", "type": "Central"},
                  "chargingProfile": ctx.csms.charging_profile(45, "TxProfile", [(0, 4000)], kind="Relative")}),
              ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Started", save_as="started",
                          **{"transactionInfo.remoteStartId": 137}),
              get_profiles(137, chargingProfilePurpose="TxProfile"), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 137, items="chargingProfile"),
              report_has({"id": 45, "transactionId": TX}, count=1)]),
    tc("TC_K_39_CS", "Composite schedule with no profiles", block="K",
       steps=[composite(), ocpp.answer({"schedule.evseId": 1, "schedule.chargingRateUnit": "W",
                                        "schedule.scheduleStart": present, "schedule.duration": 300},
                                       status="Accepted", of="composite"),
              ocpp.answer(first_limit(11000), of="composite")]),
    tc("TC_K_40_CS", "Composite schedule from stacked profiles", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 8000)], id=46, stack=0), ocpp.answer(status="Accepted"),
              set_profile(1, "TxDefaultProfile", [(0, 5000)], id=47, stack=1, duration_s=120),
              ocpp.answer(status="Accepted"),
              composite(duration=300),
              ocpp.answer({"schedule.chargingSchedulePeriod": where(
                  lambda ps: abs(ps[0]["limit"] - 5000) <= 1 and any(
                      115 <= p["startPeriod"] <= 121 and abs(p["limit"] - 8000) <= 1 for p in ps),
                  "5 kW (stack 1) for 120 s, then 8 kW (stack 0)")}, of="composite")]),
    tc("TC_K_41_CS", "Composite schedule across purposes (station max caps TxDefault)", block="K",
       steps=[set_profile(1, "TxDefaultProfile", [(0, 8000)], id=48), ocpp.answer(status="Accepted"),
              set_profile(0, "ChargingStationMaxProfile", [(0, 6000)], id=49), ocpp.answer(status="Accepted"),
              composite(), ocpp.answer(first_limit(6000), status="Accepted", of="composite")]),
    tc("TC_K_47_CS", "Composite schedule for an unknown EVSE refused", block="K",
       steps=[composite(evse_id=5), ocpp.answer(status="Rejected", of="composite")]),
    tc("TC_K_13_CS", "Profiles survive a reboot", block="K", requires=("RESET",),
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=52), ocpp.answer(status="Accepted"),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", reason="RemoteReset", within_s=30),
              get_profiles(113, chargingProfileId=[52]), ocpp.answer(status="Accepted"),
              report("ReportChargingProfiles", 113, items="chargingProfile"),
              report_has({"id": 52}, count=1)]),
    tc("TC_K_105_CS", "ChargingStationMaxProfile survives a reboot", block="K", versions=("2.1",),
       requires=("RESET",),
       steps=[set_profile(0, "ChargingStationMaxProfile", [(0, 7500)], id=53), ocpp.answer(status="Accepted"),
              ocpp.call("Reset", {"type": "Immediate"}), ocpp.answer(status="Accepted"),
              ocpp.expect("BootNotification", reason="RemoteReset", within_s=30),
              composite(), ocpp.answer(first_limit(7500), status="Accepted", of="composite")]),
    tc("TC_K_60_CS", "TxProfile with a discharge period for the running transaction: power follows", block="K",
       actions=("start_transaction",), covers=("K01.FR.07", "V2GB-OCPP-PWR-01"), **POWER,
       steps=[*started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxProfile", [(0, 5000), (8, -4000), (16, 0)], id=50, tx=TX),
              ocpp.answer(status="Accepted"),
              commanded([(0, 5000), (8, -4000), (16, 0)], until_s=24),
              let_run(),
              judge.power_follows("commanded")]),
    tc("TC_K_28_CS", "TxDefaultProfile changed during a transaction: power follows the new one", block="K",
       actions=("start_transaction",), covers=("V2GB-OCPP-PWR-01",), **POWER,
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=51), ocpp.answer(status="Accepted"),
              *started(),
              judge.record_dc_power(), let_run(1.0),
              set_profile(1, "TxDefaultProfile", [(0, 3000)], id=51), ocpp.answer(status="Accepted"),
              commanded([(0, 3000)], until_s=10),
              let_run(),
              judge.power_follows("commanded")]),
    # -- smart charging switched off (K01, F01.FR.12) ------------------------------------------------------
    tc("TC_K_15_CS", "Smart charging disabled: SetChargingProfile refused", block="K",
       steps=[*smart_charging_enabled("false"),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=70), ocpp.answer(status="Rejected"),
              get_profiles(170, chargingProfileId=[70]), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_38_CS", "Remote start with a profile while smart charging is disabled: started, profile ignored",
       block="K", covers=("F01.FR.12",),
       steps=[*smart_charging_enabled("false"),
              ocpp.call("RequestStartTransaction", lambda ctx: {
                  "remoteStartId": 138, "evseId": 1, "idToken": {"idToken": "K38-TOKEN", "type": "Central"},
                  "chargingProfile": ctx.csms.charging_profile(71, "TxProfile", [(0, 4000)], kind="Relative")}),
              ocpp.answer(status="Accepted"),
              ocpp.expect("TransactionEvent", within_s=15, eventType="Started", save_as="started",
                          **{"transactionInfo.remoteStartId": 138}),
              get_profiles(138, chargingProfilePurpose="TxProfile"), ocpp.answer(status="NoProfiles")]),
    # -- 2.1: features the station declares unsupported are refused (K01) ------------------------------------
    tc("TC_K_130_CS", "PriorityCharging profile refused when not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportedAdditionalPurposes")],
       steps=[set_profile(1, "PriorityCharging", [(0, 11000)], id=72), ocpp.answer(status="Rejected")]),
    tc("TC_K_131_CS", "LocalGeneration profile refused when not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportedAdditionalPurposes")],
       steps=[set_profile(1, "LocalGeneration", [(0, 3000)], id=73), ocpp.answer(status="Rejected")]),
    tc("TC_K_132_CS", "useLocalTime refused when not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportsUseLocalTime")],
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=74, edit=edit_schedule(useLocalTime=True)),
              ocpp.answer(status="Rejected"),
              get_profiles(174, chargingProfileId=[74]), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_133_CS", "randomizedDelay refused when not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportsRandomizedDelay")],
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=75, edit=edit_schedule(randomizedDelay=60)),
              ocpp.answer(status="Rejected"),
              get_profiles(175, chargingProfileId=[75]), ocpp.answer(status="NoProfiles")]),
    tc("TC_K_134_CS", "limitAtSoC refused when not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportsLimitAtSoC")],
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=76,
                          edit=edit_schedule(limitAtSoC={"soc": 80, "limit": 3000.0})),
              ocpp.answer(status="Rejected")]),
    tc("TC_K_135_CS", "Idle period with evseSleep refused when EVSE sleep is not supported", block="K", versions=V21,
       given=[declared_unsupported("SupportsEvseSleep")],
       steps=[set_profile(1, "TxDefaultProfile", [(0, 0)], id=77,
                          edit=edit_periods(operationMode="Idle", evseSleep=True)),
              ocpp.answer(status="Rejected")]),
    # -- 2.1 dynamic profiles (K28) ----------------------------------------------------------------------
    tc("TC_K_122_CS", "Dynamic profile pushed by the CSMS: UpdateDynamicSchedule changes the limit", block="K",
       versions=V21,
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000)], id=80, edit=dynamic()), ocpp.answer(status="Accepted"),
              ocpp.call("UpdateDynamicSchedule", {"chargingProfileId": 80, "scheduleUpdate": {"limit": 3500.0}}),
              ocpp.answer(status="Accepted"),
              composite(duration=60), ocpp.answer(first_limit(3500), of="composite")]),
    tc("TC_K_121_CS", "Dynamic profile pulled by the station every dynUpdateInterval", block="K", versions=V21,
       steps=[csms_pulls_answer({"limit": 2500.0}),
              set_profile(1, "TxDefaultProfile", [(0, 6000)], id=81, edit=dynamic(1)), ocpp.answer(status="Accepted"),
              ocpp.expect("PullDynamicScheduleUpdate", within_s=5, chargingProfileId=81),
              ocpp.expect("PullDynamicScheduleUpdate", within_s=5, chargingProfileId=81, fresh=True),
              composite(duration=60), ocpp.answer(first_limit(2500), of="composite")]),
    tc("TC_K_123_CS", "Dynamic profile validation: more than one period refused", block="K", versions=V21,
       steps=[set_profile(1, "TxDefaultProfile", [(0, 6000), (60, 3000)], id=82, edit=dynamic()),
              ocpp.answer(status="Rejected"),
              ocpp.call("UpdateDynamicSchedule", {"chargingProfileId": 82, "scheduleUpdate": {"limit": 1000.0}}),
              ocpp.answer(status="Rejected")]),

]

test_block_k = cases_test(CASES)
