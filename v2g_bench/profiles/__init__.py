"""Bench, DUT, lab-settings and scenario profiles: loading (`profiles.py`) and their pydantic schema
(`profile_schema.py`). Everything public of `profiles.py` is importable from `v2g_bench.profiles`."""
from v2g_bench.profiles.profiles import *  # noqa: F401,F403 - the package's public API
from v2g_bench.profiles.profiles import REPO_ROOT  # noqa: F401 - explicit: used by the harness and tools
