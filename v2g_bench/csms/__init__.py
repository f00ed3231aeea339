"""CSMS emulator (OCPP 2.0.1 / 2.1 back-end) and the virtual lab's simulated charging station."""

DRIVERS = {"ocpp_csms": "v2g_bench.csms.emulator:CSMSEmulator"}
