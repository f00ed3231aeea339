"""Moved to `v2g_bench.profiles.profile_schema`; this name stays an alias of that module."""
import sys

from v2g_bench.profiles import profile_schema as _schema

sys.modules[__name__] = _schema
