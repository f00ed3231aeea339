"""Instrument profiles: the data half of every driver (command tables, register maps, DBC files).

A profile lives in the repository's top-level `instruments/` folder (`instruments/scpi/<model>.toml`,
`instruments/modbus/<map>.toml`, `instruments/can/<set>.dbc`). A bench may point a role at its own
file with the role option `profile = "path/to/file.toml"`, so a lab adds a model without code when
the vendor's structure matches an existing driver.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from v2g_bench.errors import ProfileError

# The repository's `instruments/` folder (this file is v2g_bench/instruments/profile.py).
PROFILE_ROOT = Path(__file__).resolve().parents[2] / "instruments"


def profile_path(name_or_path: str, kind: str) -> Path:
    """Resolve `keysight_rp7900` (in `instruments/<kind>/`) or an explicit path to a file."""
    p = Path(name_or_path)
    if p.suffix:                      # an explicit file name/path
        return p if p.is_absolute() or p.exists() else PROFILE_ROOT / p
    suffix = ".dbc" if kind == "can" else ".toml"
    return PROFILE_ROOT / kind / f"{name_or_path}{suffix}"


@lru_cache(maxsize=64)
def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ProfileError([f"instrument profile {path} does not exist"], where=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError([f"instrument profile is not valid TOML: {e}"], where=str(path)) from None


def load_profile(name_or_path: str, kind: str = "scpi", *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load and minimally validate an instrument profile; every problem is listed at once."""
    path = profile_path(name_or_path, kind)
    data = _load(path)
    problems = []
    if "model" not in data or "manual" not in data.get("model", {}):
        problems.append("missing [model] table with a `manual` citation (manual + section)")
    for key in required:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            problems.append(f"missing `{key}`")
    if problems:
        raise ProfileError(problems, where=str(path))
    return data
