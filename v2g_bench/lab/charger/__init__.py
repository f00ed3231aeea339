"""The simulated charger under test (the virtual DUT), in one place.

secc (its ISO 15118 SECC, on the iso15118 stack), station (its OCPP 2.0.1/2.1 charging station, on
the ocpp stack), profile_stack (its smart-charging profile stack and composite schedule), coupling
(`SimulatedCharger`: one per plant, couples the SECC and the station to the power stage),
dut_role (the harness' `dut` role driver that inspects and commands it via the lab's control port),
bad_charger (a deliberately broken SECC for the EV emulator's own tests).
"""
