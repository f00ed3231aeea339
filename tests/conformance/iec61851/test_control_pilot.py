"""IEC 61851-1 control pilot: the charger's PWM on state B, no energy before C, and its stop when the EV leaves
C (to B, A or E), timed on the EV-side board's clock. Needs the `ev_io` role (the DUT action set_cp_state).

Clauses are IEC 61851-1:2017 Annex A (A.2 CP circuit and states, Table A.2/A.3; A.3 PWM, Tables A.7/A.8; A.4
sequences and response times, Table A.6)."""
from v2g_bench.conformance import Case, cases_test
from v2g_bench.conformance.physical_steps import (
    cp_energized, cp_no_energy_in, cp_plug_in, cp_pwm_started, cp_stop_on,
)

STD, BLOCK = "IEC 61851-1", "Control pilot"

CASES = [
    Case("TC_CP_01", title="State B: the charger starts a 1 kHz PWM with an allowed duty (5 % for ISO 15118)",
         standard=STD, block=BLOCK, covers=("IEC61851-1:A.3", "IEC61851-1:A.2"), requires=("CP",),
         actions=("set_cp_state",), markers=("safety",),
         given=[cp_plug_in("B")], steps=[cp_pwm_started()]),
    Case("TC_CP_02", title="State B: no energy at the inlet before the EV is ready (C/D)",
         standard=STD, block=BLOCK, covers=("IEC61851-1:A.2",), requires=("CP",), actions=("set_cp_state",),
         markers=("safety",), given=[cp_plug_in("B")], steps=[cp_pwm_started(), cp_no_energy_in("B", 3.0)]),
    Case("TC_CP_03", title="C -> B (EV not ready): the charger de-energizes within 100 ms",
         standard=STD, block=BLOCK, covers=("IEC61851-1:A.4",), requires=("CP",), actions=("set_cp_state",),
         markers=("safety", "timing"), given=[cp_plug_in("B"), cp_energized()], steps=[cp_stop_on("B")]),
    Case("TC_CP_04", title="C -> A (unplugged): the charger de-energizes within 100 ms",
         standard=STD, block=BLOCK, covers=("IEC61851-1:A.4",), requires=("CP",), actions=("set_cp_state",),
         markers=("safety", "timing"), given=[cp_plug_in("B"), cp_energized()], steps=[cp_stop_on("A")]),
    Case("TC_CP_05", title="C -> E (CP shorted to PE): the charger de-energizes within 100 ms",
         standard=STD, block=BLOCK, covers=("IEC61851-1:A.4",), requires=("CP",), actions=("set_cp_state",),
         markers=("safety", "timing"), given=[cp_plug_in("B"), cp_energized()], steps=[cp_stop_on("E")]),
]
test_control_pilot = cases_test(CASES)
