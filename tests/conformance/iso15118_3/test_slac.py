"""ISO 15118-3 SLAC, the charger's side, with our EV side (scapy HomePlug layers) through the `plc` role: the
match, its timers from the capture, the NID/NMK, a wrong RunID refused, then SDP and an ISO 15118-20 session over
the matched link. The EV plugs in through the `ev_io` board first (CP B), as the charger starts SLAC on CP."""
from v2g_bench.conformance import Case, cases_test
from v2g_bench.conformance.physical_steps import (
    cp_plug_in, cp_pwm_started, session_over_link, slac_key_consistent, slac_matches, slac_timers,
    slac_wrong_run_id_refused,
)

STD, BLOCK = "ISO 15118-3", "SLAC"
PLUG = [cp_plug_in("B"), cp_pwm_started()]

CASES = [
    Case("TC_SLAC_01", title="The charger matches the EV (CM_SLAC_PARM, ATTEN_CHAR, SLAC_MATCH) with a valid key",
         standard=STD, block=BLOCK, side="SECC", covers=("V2GB-SLAC-01", "V2GB-SLAC-03"), requires=("SLAC",),
         actions=("set_cp_state",), given=PLUG, steps=[slac_matches(), slac_key_consistent()]),
    Case("TC_SLAC_02", title="The charger answers SLAC within the -3 timers (capture timestamps)",
         standard=STD, block=BLOCK, side="SECC", covers=("V2GB-SLAC-02",), requires=("SLAC",),
         actions=("set_cp_state",), markers=("timing",), given=PLUG, steps=[slac_matches(), slac_timers()]),
    Case("TC_SLAC_03", title="A CM_SLAC_MATCH.REQ with a wrong RunID is not matched",
         standard=STD, block=BLOCK, side="SECC", covers=("V2G3-A09-98",), requires=("SLAC",),
         actions=("set_cp_state",), given=PLUG, steps=[slac_wrong_run_id_refused()]),
    Case("TC_SLAC_04", title="After SLAC: SDP and an ISO 15118-20 DC_BPT session over the matched link",
         standard=STD, block=BLOCK, side="SECC", covers=("V2GB-SLAC-04",),
         requires=("SLAC", "ISO15118-20", "DC_BPT"), actions=("set_cp_state",), given=PLUG,
         steps=[slac_matches(), session_over_link()]),
]
test_slac = cases_test(CASES)
