"""Provisioning of the simulated station (block B, and A's security settings): variables, base and
custom reports, network profiles, reset and reboot, availability, and the 2.1 DER control report."""
from __future__ import annotations

import asyncio

from ocpp.charge_point import camel_to_snake_case

from .config import iso_ms, utcnow


class ProvisioningMixin:
    # -- B05 / B06 -----------------------------------------------------------------------------------
    def get_variable(self, d: dict) -> dict:
        if (d["component"]["name"], d["variable"]["name"]) == ("ClockCtrlr", "DateTime"):
            self.device.put("ClockCtrlr", "DateTime", iso_ms(utcnow()))
        r = self.device.get_result(d, unknown_component_as_variable=self.defects.on("unknown_component_as_variable"))
        if self.defects.on("get_variable_no_value"):
            r.pop("attribute_value", None)
        return r

    def set_variable(self, d: dict) -> dict:
        if ((d["component"]["name"], d["variable"]["name"]) == ("OCPPCommCtrlr", "NetworkConfigurationPriority")
                and d.get("attribute_type") in (None, "Actual") and not self.defects.on("priority_any_slot")):
            empty = [x for x in str(d["attribute_value"]).split(",")
                     if x.strip() and x.strip() != "0" and x.strip().isdigit() and int(x) not in self.network_profiles]
            if empty:       # B09: the priority may only name slots that hold a network connection profile
                return {"component": d["component"], "variable": d["variable"], "attribute_status": "Rejected",
                        "attribute_status_info": {"reason_code": "InvalidValue",
                                                  "additional_info": f"no network profile in slot(s) {empty}"}}
        result, var = self.device.set_result(d, store=not self.defects.on("set_variable_not_stored"),
                                             allow_read_only=self.defects.on("write_read_only"),
                                             skip_validation=self.defects.on("accept_bad_value"))
        if var is not None and result["attribute_status"] == "Accepted":
            self._variable_written(var.component, var.name, str(d["attribute_value"]))
        return result

    def _variable_written(self, component: str, name: str, value: str) -> None:
        if (component, name) == ("SecurityCtrlr", "BasicAuthPassword"):
            # A01: the new password is used from the next connection on; the station reconnects with it
            self._connect_args["password"] = value
            self._spawn(self._reconnect_for_security("new BasicAuthPassword"))
        elif (component, name) == ("OCPPCommCtrlr", "HeartbeatInterval"):
            pass                    # read by the heartbeat task at its next beat

    async def _reconnect_for_security(self, why: str) -> None:
        await asyncio.sleep(0.2)                  # our SetVariablesResponse goes out first
        await self.security_event("ReconfigurationOfSecurityParameters", why)
        await asyncio.sleep(0.1)
        if self.ws is not None:
            self._reboot_now = True               # not a failure: reconnect at once
            await self.ws.close(1000, "reconnecting with new security parameters")

    # -- B07 / B08 reports -------------------------------------------------------------------------
    def base_report(self, request_id: int, kind: str) -> str:
        items = self.device.base_report(kind)
        if items is None:
            return "NotSupported"
        self._spawn(self._notify_report(request_id, items))
        return "Accepted"

    def custom_report(self, request_id: int, component_variable, criteria) -> str:
        cv = camel(component_variable) if component_variable else None
        items = self.device.custom_report(cv, criteria)
        if not items:
            return "EmptyResultSet"
        self._spawn(self._notify_report(request_id, items))
        return "Accepted"

    async def _notify_report(self, request_id: int, items: list[dict]) -> None:
        await asyncio.sleep(0.05)          # after our answer
        per = int(self.device.get("DeviceDataCtrlr", "ItemsPerMessageGetReport"))
        rid = request_id + 1 if self.defects.on("report_missing_request_id") else request_id
        chunks = [items[i:i + per] for i in range(0, len(items), per)]
        for seq, chunk in enumerate(chunks):
            await self._call("NotifyReport", request_id=rid, generated_at=iso_ms(utcnow()), seq_no=seq,
                             tbc=seq < len(chunks) - 1, report_data=camel_to_snake_case(chunk))

    # -- B09 network profiles, A05 security profile --------------------------------------------------
    def set_network_profile(self, slot: int, data: dict) -> str:
        slots = self.device.vars[("OCPPCommCtrlr", "NetworkConfigurationPriority")].values_list.split(",")
        if str(slot) not in slots and not self.defects.on("network_profile_any_slot"):
            return "Rejected"                               # B09.FR.02: no such configuration slot
        if int(data.get("securityProfile", 0)) < self.security_profile:
            return "Rejected"                               # A05: never downgrade the security profile
        active = self.device.get("OCPPCommCtrlr", "NetworkConfigurationPriority").split(",")[0]
        if self.version == "2.1" and str(slot) == active:
            return "Rejected"                               # the connection in use is not overwritten
        self.network_profiles[int(slot)] = data
        return "Accepted"

    # -- B11 / B12 reset ------------------------------------------------------------------------------
    def reset(self, kind: str, evse_id) -> str:
        if evse_id is not None:
            return "Rejected"                    # this station resets only as a whole (B11.FR.10 / B12.FR.09)
        if self.tx_id is not None and kind == "OnIdle":
            self.reset_pending = True
            return "Scheduled"
        if not self.defects.on("reset_no_reboot"):
            self._spawn(self.do_reset(kind))
        return "Accepted"

    async def do_reset(self, kind: str = "Immediate") -> None:
        resumable = (int(self.device.get("TxCtrlr", "TxResumptionTimeout")) > 0
                     or self.defects.on("power_loss_tx_lost"))
        if self.tx_id and kind == "ImmediateAndResume" and resumable:
            await self.lose_power_during_transaction()          # 2.1 B13: resumed after the reboot
        elif self.tx_id:
            await self.stop_transaction(reason="ImmediateReset", trigger="ResetCommand")
        # finish what is in flight (the answer to the CSMS's request, the Ended event) before rebooting
        for _ in range(50):
            if not self.outbox:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        self.boot_accepted = False
        self.boot_status = None
        self.boot_reason = "RemoteReset"
        self.resets += 1
        self._restart_slots()                 # a reboot starts over with the first slot of the priority
        if self.defects.on("availability_lost_on_reset"):
            self.operative = True
        if self.ws is not None:
            self._reboot_now = True
            await self.ws.close(1000, "reset")

    # -- G03 availability ---------------------------------------------------------------------------
    def change_availability(self, status: str, evse) -> str:
        if evse is not None and evse.get("id") not in (0, self.cfg.evse_id):
            return "Rejected"
        self.operative = status == "Operative"
        if self.tx_id is not None and not self.operative:
            return "Scheduled"
        if not self.defects.on("availability_no_status"):
            self._spawn(self.send_status())
        return "Accepted"

    # -- R DER control report ---------------------------------------------------------------------------
    def get_der_controls(self, request_id: int, is_default, control_type, control_id) -> str:
        found = self.der.query(is_default, control_type, control_id)
        if not found:
            return "NotFound"
        self._spawn(self._report_der(request_id, found))
        return "Accepted"

    async def _report_der(self, request_id: int, found) -> None:
        await asyncio.sleep(0.05)
        await self._call("ReportDERControl", request_id=request_id, **camel_to_snake_case(self.der.report(found)))


def camel(x):
    from v2g_bench.csms import compat
    return compat.snake_to_camel_case(x)
