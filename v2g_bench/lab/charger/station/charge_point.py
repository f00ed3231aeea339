"""The station's OCPP endpoint: the library's ChargePoint (as a real station would use it) with the
CSMS-initiated actions it handles; each handler delegates to the StationService.

One mixin for both versions; `charge_point_class(version)` puts it on the version's ChargePoint and
gives it the version's `call` / `call_result` modules."""
from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from typing import TYPE_CHECKING

from ocpp.exceptions import OCPPError
from ocpp.messages import unpack
from ocpp.routing import on

from v2g_bench.csms import compat

if TYPE_CHECKING:
    from .service import StationService

camel = compat.snake_to_camel_case


class StationHandlers:
    station: "StationService"
    R = None            # the version's call_result module

    async def route_message(self, raw_msg):
        # The library only logs frames it cannot parse; a station must answer them
        # (OCPP-J: CALLERROR, messageId "-1" when the id cannot be read).
        try:
            unpack(raw_msg)
        except RecursionError:
            # found by the fuzz campaign: "[[[[...]]]]" 2000 deep raised out of ocpp's unpack and
            # killed the connection (1011); a station answers it like any unreadable frame
            await self._send(json.dumps([4, "-1", "RpcFrameworkError", "message nested too deeply", {}]))
            return
        except OCPPError as e:
            uid = "-1"
            try:
                m = json.loads(raw_msg)
                if isinstance(m, list) and len(m) > 1 and isinstance(m[1], str):
                    uid = m[1]
            except ValueError:
                pass
            code = "MessageTypeNotSupported" if uid != "-1" else "RpcFrameworkError"
            await self._send(json.dumps([4, uid, code, str(e.description)[:255], {}]))
            return
        st = self.station
        m = json.loads(raw_msg) if not st.boot_accepted else None
        if isinstance(m, list) and m and m[0] == 2 and st.boot_status is None:
            # the answer to our BootNotification was read just before this CALL: let boot() take it in first
            for _ in range(50):
                await asyncio.sleep(0.01)
                if st.boot_status is not None:
                    break
        if st.boot_status == "Rejected" and not st.boot_accepted and not st.defects.on("answers_while_rejected"):
            if isinstance(m, list) and m and m[0] == 2:
                # B03.FR.07/08: while its boot is Rejected the station executes no CSMS request
                await self._send(json.dumps([4, m[1], "SecurityError", "BootNotification not accepted (Rejected)",
                                             {}]))
                return
        return await super().route_message(raw_msg)

    # -- K smart charging ------------------------------------------------------------------------
    @on("SetChargingProfile")
    async def on_set_charging_profile(self, evse_id, charging_profile, **_):
        status, reason = self.station.set_profile(evse_id, camel(charging_profile))
        info = {"reason_code": "InvalidProfile", "additional_info": reason[:512]} if reason else None
        return self.R.SetChargingProfile(status=status, status_info=info)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, charging_profile_id=None, charging_profile_criteria=None, **_):
        return self.R.ClearChargingProfile(status=self.station.clear_profiles(charging_profile_id,
                                                                              charging_profile_criteria or {}))

    @on("GetChargingProfiles")
    async def on_get_charging_profiles(self, request_id, charging_profile, evse_id=None, **_):
        return self.R.GetChargingProfiles(status=self.station.get_profiles(request_id, charging_profile, evse_id))

    @on("GetCompositeSchedule")
    async def on_get_composite_schedule(self, duration, evse_id, charging_rate_unit=None, **_):
        st = self.station
        if evse_id not in (0, st.cfg.evse_id):
            return self.R.GetCompositeSchedule(status="Rejected", status_info={"reason_code": "UnknownEvse"})
        return self.R.GetCompositeSchedule(
            status="Accepted", schedule=st.composite_schedule(evse_id, duration, charging_rate_unit or "W"))

    # -- F remote control ------------------------------------------------------------------------
    @on("RequestStartTransaction")
    async def on_request_start(self, id_token, remote_start_id, evse_id=None, charging_profile=None, **_):
        status = self.station.remote_start(camel(id_token), remote_start_id, evse_id,
                                           camel(charging_profile) if charging_profile else None)
        kw = {"transaction_id": self.station.tx_id} if status == "Rejected" and self.station.tx_id else {}
        return self.R.RequestStartTransaction(status=status, **kw)

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id, **_):
        return self.R.RequestStopTransaction(status=self.station.remote_stop(transaction_id))

    @on("TriggerMessage")
    async def on_trigger(self, requested_message, evse=None, custom_trigger=None, **_):
        return self.R.TriggerMessage(status=self.station.trigger(requested_message, evse, custom_trigger))

    @on("UnlockConnector")
    async def on_unlock(self, evse_id, connector_id, **_):
        return self.R.UnlockConnector(status=self.station.unlock(evse_id, connector_id))

    @on("GetTransactionStatus")
    async def on_get_transaction_status(self, transaction_id=None, **_):
        # an answer to a queued event read just before this CALL: let the sender take it off the queue first
        await asyncio.sleep(0.02)
        return self.R.GetTransactionStatus(**self.station.transaction_status(transaction_id))

    # -- A security: certificates ----------------------------------------------------------------
    @on("CertificateSigned")
    async def on_certificate_signed(self, certificate_chain, certificate_type=None, **_):
        status, why = self.station.certificate_signed(certificate_chain, certificate_type)
        info = {"reason_code": "InvalidCertificate", "additional_info": why[:512]} if why else None
        return self.R.CertificateSigned(status=status, status_info=info)

    # -- B provisioning ----------------------------------------------------------------------------
    @on("GetVariables")
    async def on_get_variables(self, get_variable_data, **_):
        if self.station.defects.on("disconnect_mid_case"):
            self.station.ws.transport.abort()          # bad input for the CSMS: gone without an answer
            return self.R.GetVariables(get_variable_result=[])
        return self.R.GetVariables(get_variable_result=[self.station.get_variable(d) for d in get_variable_data])

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data, **_):
        return self.R.SetVariables(set_variable_result=[self.station.set_variable(d) for d in set_variable_data])

    @on("GetBaseReport")
    async def on_get_base_report(self, request_id, report_base, **_):
        return self.R.GetBaseReport(status=self.station.base_report(request_id, report_base))

    @on("GetReport")
    async def on_get_report(self, request_id, component_variable=None, component_criteria=None, **_):
        return self.R.GetReport(status=self.station.custom_report(request_id, component_variable, component_criteria))

    @on("SetNetworkProfile")
    async def on_set_network_profile(self, configuration_slot, connection_data, **_):
        status = self.station.set_network_profile(configuration_slot, camel(connection_data))
        return self.R.SetNetworkProfile(status=status)

    @on("Reset")
    async def on_reset(self, type, evse_id=None, **_):
        return self.R.Reset(status=self.station.reset(type, evse_id))

    @on("ChangeAvailability")
    async def on_change_availability(self, operational_status, evse=None, **_):
        return self.R.ChangeAvailability(status=self.station.change_availability(operational_status, evse))

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id, **_):
        # this station implements no vendor extension: every vendorId is unknown (use case P01)
        return self.R.DataTransfer(status="UnknownVendorId")


class DerHandlers:
    """OCPP 2.1 block R (DER control) and K28 dynamic schedules: only on the 2.1 class."""

    @on("UpdateDynamicSchedule")
    async def on_update_dynamic_schedule(self, charging_profile_id, schedule_update, **_):
        return self.R.UpdateDynamicSchedule(status=self.station.update_dynamic(charging_profile_id,
                                                                               camel(schedule_update)))

    @on("SetDERControl")
    async def on_set_der_control(self, is_default, control_id, control_type, **kw):
        status, superseded = self.station.der.set_with_superseded(is_default, control_id, control_type, camel(kw))
        self.station.apply_now()
        return self.R.SetDERControl(status=status, superseded_ids=superseded or None)

    @on("GetDERControl")
    async def on_get_der_control(self, request_id, is_default=None, control_type=None, control_id=None, **_):
        status = self.station.get_der_controls(request_id, is_default, control_type, control_id)
        return self.R.GetDERControl(status=status)

    @on("ClearDERControl")
    async def on_clear_der_control(self, is_default, control_type=None, control_id=None, **_):
        wide = self.station.defects.on("der_clear_all")
        status = self.station.der.clear(is_default, None if wide else control_type, None if wide else control_id)
        self.station.apply_now()
        return self.R.ClearDERControl(status=status)


@lru_cache(maxsize=None)
def charge_point_class(version: str) -> type:
    if version == "2.1":
        from ocpp.v21 import ChargePoint as Base
        from ocpp.v21 import call, call_result
        bases = (StationHandlers, DerHandlers, Base)
    else:
        from ocpp.v201 import ChargePoint as Base
        from ocpp.v201 import call, call_result
        bases = (StationHandlers, Base)
    return type(f"StationChargePoint{version.replace('.', '')}", bases,
                {"call_module": call, "R": call_result, "__doc__": "The simulated station's OCPP endpoint."})

