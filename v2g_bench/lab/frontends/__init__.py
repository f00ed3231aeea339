"""The virtual lab's front-ends: real transports in vendor dialects over the one plant.

scpi (parser core), scpi_server (asyncio TCP server), dialects/ (Keysight RP7900, Yokogawa WT),
modbus (pymodbus server: charger + meter maps), can (socketcand server + the BMS frame set).
"""
