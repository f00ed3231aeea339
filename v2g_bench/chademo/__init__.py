"""CHAdeMO (bidirectional, V2H class) over CAN: the frame database (chademo.dbc, a public source per
signal), the EV emulator (`ev.ChademoEV`, role `chademo`); the lab's charger is
v2g_bench.lab.charger.chademo_charger."""
