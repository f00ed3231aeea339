"""v2g_bench.lab - the virtual lab process (see docs/virtual-lab.md).

plant.py (Plant, LabClock, PlantState), scpi.py (SCPI parser core), dialects/ (Keysight RP7900,
Yokogawa WT), scpi_server.py, modbus.py, can.py (socketcand), control.py (LabControl client),
server.py (the process; `python -m v2g_bench.lab`), cli.py (Typer app for `v2g-bench lab`).
Importing this package imports nothing heavy.
"""
