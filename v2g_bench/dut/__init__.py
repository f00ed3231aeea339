"""v2g_bench.dut: adapters for the charger under test's local side (inspection and safe state)."""

DRIVERS = {
    "virtual_lab_dut": "v2g_bench.lab.charger.dut_role:VirtualLabDut",
    "ocpp_charger": "v2g_bench.dut.real_charger:OcppCharger",
}
