"""v2g_bench.ev: the EV emulator (iso15118 EVCC + EV model), the lab's SECC service, traces and pcaps."""

DRIVERS = {"iso15118_evcc": "v2g_bench.ev.emulator:EVEmulator"}
