"""The virtual lab's simulated bidirectional DC charging station: an OCPP 2.0.1/2.1 client built on
the `ocpp` library's ChargePoint (as a real station would be), driving the lab's `Plant`.

One module per concept:
  config.py         options ([services.station])         connection.py  link, boot, back-off, status
  charge_point.py   the OCPP handlers (library ChargePoint) transactions.py E/F: transactions, offline queue
  smart_charging.py K: profiles, composite, power, EV needs provisioning.py B: variables, reports, reset
  device_model.py   components and variables              der.py         2.1 R: DER controls
  service.py        the service, its control-port ops and `start_service` (the lab's entry point)
Switchable defects (every conformance case can fail): v2g_bench.lab.charger.station_defects.
"""
from .config import StationConfig, iso_ms, utcnow
from .service import StationService, start_service

__all__ = ["StationConfig", "StationService", "iso_ms", "start_service", "utcnow"]
