"""v2g_bench.harness: the test harness' internals (not a public API).

plugin (the pytest plugin: options, role fixtures, markers, Allure wiring), bench (opens roles,
unwinds them to a verified safe state), runner (`v2g-bench run`), reporting, evidence, sampling
(timestamped recorders), labproc / labsetup (the virtual lab process as the harness starts it),
asyncrt (an asyncio loop in a thread), doctor.
"""
