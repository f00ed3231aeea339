"""v2g_bench.instruments: role APIs (dc_source, analyzer, energy_meter, modbus_charger, can_node) and
vendor drivers. Importing this package is cheap: drivers load only when the registry asks for them.

`DRIVERS` is read by `v2g_bench.drivers` (name used in bench profiles -> "module:Class").
"""

DRIVERS = {
    # regenerative DC sources / battery emulators (role "battery")
    "keysight_rp7900": "v2g_bench.instruments.vendors.scpi_dc_source:KeysightRP7900",
    "ea_psb10000": "v2g_bench.instruments.vendors.scpi_dc_source:EaPsb10000",
    "scpi_dc_source": "v2g_bench.instruments.vendors.scpi_dc_source:ScpiDCSource",   # needs option `profile`
    "nhr_9300": "v2g_bench.instruments.vendors.nhr_9300:NhResearch9300",
    "chroma_17040": "v2g_bench.instruments.vendors.chroma_17040:Chroma17040",
    # power analyzers (role "analyzer")
    "yokogawa_wt5000": "v2g_bench.instruments.vendors.scpi_analyzer:YokogawaWT5000",
    "yokogawa_wt1800": "v2g_bench.instruments.vendors.scpi_analyzer:YokogawaWT1800",
    "hioki_pw3390": "v2g_bench.instruments.vendors.scpi_analyzer:HiokiPW3390",
    "hioki_pw6001": "v2g_bench.instruments.vendors.scpi_analyzer:HiokiPW6001",
    # Modbus (roles "meter", "charger") and CAN (role "can")
    "modbus_meter": "v2g_bench.instruments.energy_meter:ModbusEnergyMeter",
    "eastron_sdm630": "v2g_bench.instruments.energy_meter:EastronSDM630",
    "wallbox_quasar": "v2g_bench.instruments.modbus_charger:WallboxQuasar",
    "can_dbc_node": "v2g_bench.instruments.can_node:CanDbcNode",
    "can_bms_sma": "v2g_bench.instruments.can_node:SmaBmsNode",
    # EV-side interface board: control pilot, proximity, plug relay, E-stop (role "ev_io")
    "evio_serial": "v2g_bench.instruments.ev_io:EvIoSerialBoard",
    "pyplc_celeron55": "v2g_bench.instruments.vendors.pyplc_celeron55:Celeron55EvIo",   # pyPLC's EV-side device
    # CHAdeMO EV emulator over CAN (role "chademo")
    "chademo_ev": "v2g_bench.chademo.ev:ChademoEV",
    # the EV's HomePlug Green PHY link: ISO 15118-3 SLAC (role "plc")
    "slac_ev": "v2g_bench.ev.slac:SlacEvRole",
}


def hard_stop_all() -> list[str]:
    """Every open DC source: output off now (no ramp), verified. Returns problems; never raises."""
    from v2g_bench.instruments.safety import hard_stop_all as _hs
    return _hs()
