"""CHAdeMO bidirectional (V2H) over CAN: our EV emulator (`chademo` role) and the charger; charge -> discharge ->
stop judged on the analyzer's measured DC power, the stop on the EV's fault, and the charger's frame cycle from the
bus timestamps. CAN traces (ASC + CSV) are written to the evidence by the EV emulator."""
from v2g_bench.conformance import Case, cases_test
from v2g_bench.conformance.physical_steps import (
    chademo_charges, chademo_cycle, chademo_discharges, chademo_reset, chademo_stops,
)

STD, BLOCK = "CHAdeMO", "V2H"

CASES = [
    Case("TC_CHADEMO_01", title="Charge, V2H discharge and stop, measured on the DC link",
         standard=STD, block=BLOCK, covers=("V2GB-CHADEMO-01",), requires=("CHADEMO", "DC_BPT"), markers=("power",),
         given=[chademo_reset()],
         steps=[chademo_charges(20.0), chademo_discharges(3000.0), chademo_stops("stop")]),
    Case("TC_CHADEMO_02", title="The EV's battery fault (H'102.4.0) stops the charger",
         standard=STD, block=BLOCK, covers=("V2GB-CHADEMO-01",), requires=("CHADEMO",), markers=("safety",),
         given=[chademo_reset()], steps=[chademo_charges(10.0), chademo_stops("fault")]),
    Case("TC_CHADEMO_03", title="The charger's frames are well-formed and sent every 100 ms",
         standard=STD, block=BLOCK, covers=("V2GB-CHADEMO-02",), requires=("CHADEMO",), markers=("timing",),
         given=[chademo_reset()], steps=[chademo_charges(5.0), chademo_cycle(), chademo_stops("stop")]),
]
test_chademo_v2h = cases_test(CASES)
