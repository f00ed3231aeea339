"""Bench and DUT profiles (TOML): loading and strict validation.

A *bench profile* maps roles to drivers, resource strings, options and limits. A *DUT profile*
(the lab's PICS/PIXIT) declares what the charger claims. Validation collects every problem and
names the file, the key and the fix; it never stops at the first.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2g_bench.errors import DriverNotFound, ProfileError
from v2g_bench.roles import KNOWN_ROLES, RoleConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "profiles"
DEFAULT_BENCH = PROFILES_DIR / "virtual-lab.bench.toml"
DEFAULT_DUT = PROFILES_DIR / "virtual-dut.dut.toml"

_PLACEHOLDER = re.compile(r"\{lab\.([A-Za-z0-9_.]+)\}")
_ROLE_KEYS = {"driver", "resource", "timeout_s", "limits", "description"}


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ProfileError([f"file not found (fix: check the path, e.g. {DEFAULT_BENCH.relative_to(REPO_ROOT)})"],
                           where=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError([f"not valid TOML: {e} (fix: correct the syntax at that line)"], where=str(path)) from None


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def substitute_lab(value: str, lab_info: dict | None) -> str:
    """Replace `{lab.ports.x}` (and other `{lab.a.b}` paths) with values from the lab's ready file."""
    def repl(m: re.Match) -> str:
        if lab_info is None:
            raise ProfileError([f"{m.group(0)} needs the built-in virtual lab, but none is running "
                                "(fix: set bench.lab = \"builtin\" or use a literal resource string)"])
        cur: Any = lab_info
        for part in m.group(1).split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise ProfileError([f"the virtual lab provides no {m.group(0)} (it has: {sorted(lab_info.get('ports', {}))})"])
            cur = cur[part]
        return str(cur)
    return _PLACEHOLDER.sub(repl, value)


# ---------------------------------------------------------------------------------- bench ---
@dataclass
class BenchProfile:
    name: str
    path: Path
    roles: dict[str, RoleConfig]
    lab: dict[str, Any] | None = None          # None on a real bench; options of the built-in lab
    description: str = ""
    laboratory: str = ""                        # [bench] laboratory: the lab (name, address) named in the test report
    operator: str = ""                          # [bench] operator: who runs it (overridable per run)

    @property
    def uses_builtin_lab(self) -> bool:
        return self.lab is not None

    def resolved(self, lab_info: dict | None) -> "BenchProfile":
        """A copy with `{lab.…}` placeholders in every string option replaced from the lab's ready file."""
        roles = {}
        for name, rc in self.roles.items():
            opts = {k: (substitute_lab(v, lab_info) if isinstance(v, str) else v) for k, v in rc.options.items()}
            res = substitute_lab(rc.resource, lab_info) if rc.resource else rc.resource
            roles[name] = RoleConfig(role=rc.role, driver=rc.driver, resource=res, options=opts,
                                     limits=dict(rc.limits), timeout_s=rc.timeout_s, source=rc.source)
        return BenchProfile(self.name, self.path, roles, self.lab, self.description, self.laboratory, self.operator)


def _check_limits(where: str, limits: Any, errors: list[str]) -> dict[str, float]:
    if not isinstance(limits, dict):
        errors.append(f"{where}: must be a table of numbers (fix: [{where}] with keys like voltage_max_v = 900)")
        return {}
    out: dict[str, float] = {}
    for k, v in limits.items():
        if not _num(v):
            errors.append(f"{where}.{k}: {v!r} is not a number (fix: give it in SI units, e.g. {k} = 100.0)")
            continue
        out[k] = float(v)
    # min <= max for every pair foo_min_x / foo_max_x
    for k, v in out.items():
        if "_min_" in k:
            k_max = k.replace("_min_", "_max_")
            if k_max in out and v > out[k_max]:
                errors.append(f"{where}: {k} = {v:g} is above {k_max} = {out[k_max]:g} (fix: min must be <= max)")
    for k, v in out.items():
        if any(s in k for s in ("capacity", "power_max", "voltage_max")) and v <= 0:
            errors.append(f"{where}.{k}: {v:g} must be > 0 (fix: a positive value in SI units)")
        if k.endswith("_s") and v < 0:
            errors.append(f"{where}.{k}: {v:g} must be >= 0")
    return out


def _check_resource(where: str, driver_cls: Any, resource: Any, errors: list[str]) -> None:
    transport = getattr(driver_cls, "transport", "none")
    if transport == "visa":
        if not isinstance(resource, str) or not resource:
            errors.append(f"{where}.resource: missing (fix: a VISA resource string, e.g. "
                          "\"TCPIP0::10.0.0.5::5025::SOCKET\" or \"ASRL/dev/ttyUSB0::INSTR\")")
            return
        from pyvisa import rname
        probe = _PLACEHOLDER.sub("1", resource)   # placeholders are ports: validate the shape
        try:
            rname.parse_resource_name(probe)
        except Exception as e:  # pyvisa raises InvalidResourceName (a ValueError subclass)
            errors.append(f"{where}.resource: {resource!r} is not a VISA resource string ({e}) (fix: e.g. "
                          "\"TCPIP0::10.0.0.5::5025::SOCKET\")")
    elif transport in ("modbus", "can") and resource is not None and not isinstance(resource, str):
        errors.append(f"{where}.resource: must be a string")


def _check_instrument_identity(where: str, entry: dict, errors: list[str]) -> None:
    """Optional `serial` and `calibration_due` of a role's instrument (shown in the test report)."""
    import datetime as _dt
    if "serial" in entry and not isinstance(entry["serial"], (str, int)):
        errors.append(f"{where}.serial: must be a string (fix: serial = \"MY12345678\")")
    due = entry.get("calibration_due")
    if due is not None and not isinstance(due, _dt.date):
        try:
            _dt.date.fromisoformat(str(due))
        except ValueError:
            errors.append(f"{where}.calibration_due: {due!r} is not a date (fix: calibration_due = 2027-03-31)")


def load_bench(path: str | Path) -> BenchProfile:
    """Load and validate a bench profile; raise ProfileError listing every problem."""
    from v2g_bench.drivers import get_driver
    path = Path(path)
    data = _read_toml(path)
    src = str(path)
    errors: list[str] = []
    unknown_top = set(data) - {"bench", "lab", "roles"}
    for k in sorted(unknown_top):
        errors.append(f"{k}: unknown top-level table (fix: use [bench], [lab] and [roles.<role>])")
    bench = data.get("bench")
    if not isinstance(bench, dict) or not isinstance(bench.get("name"), str) or not bench.get("name"):
        errors.append("bench.name: missing (fix: add [bench] with name = \"my-bench\")")
        bench = bench if isinstance(bench, dict) else {}
    lab_opts = None
    lab_kind = bench.get("lab")
    if lab_kind is not None:
        if lab_kind != "builtin":
            errors.append(f"bench.lab: {lab_kind!r} is not known (fix: \"builtin\" for the virtual lab, or remove the key on a real bench)")
        lab_opts = data.get("lab", {})
        if not isinstance(lab_opts, dict):
            errors.append("lab: must be a table")
            lab_opts = {}
        ts = lab_opts.get("time_scale", 1.0)
        if not _num(ts) or ts <= 0:
            errors.append(f"lab.time_scale: {ts!r} must be a number > 0 (fix: 1.0 for real time, 100 for 100x)")
    elif "lab" in data:
        errors.append("lab: options given but bench.lab is not set (fix: add lab = \"builtin\" to [bench])")

    roles_in = data.get("roles", {})
    roles: dict[str, RoleConfig] = {}
    if not isinstance(roles_in, dict) or not roles_in:
        errors.append("roles: no roles defined (fix: add [roles.<role>] tables, roles: " + ", ".join(KNOWN_ROLES) + ")")
        roles_in = {}
    for role, entry in roles_in.items():
        where = f"roles.{role}"
        if role not in KNOWN_ROLES:
            errors.append(f"{where}: unknown role {role!r} (fix: one of {', '.join(KNOWN_ROLES)})")
            continue
        if not isinstance(entry, dict):
            errors.append(f"{where}: must be a table")
            continue
        drv_name = entry.get("driver")
        if not isinstance(drv_name, str):
            errors.append(f"{where}.driver: missing (fix: driver = \"<name>\"; 'v2g-bench instruments list' shows the drivers)")
            continue
        try:
            drv = get_driver(drv_name)
        except DriverNotFound as e:
            errors.append(f"{where}.driver: {e}")
            continue
        if drv.roles and role not in drv.roles:
            errors.append(f"{where}.driver: {drv_name!r} cannot play role {role!r} (it plays {', '.join(drv.roles)})")
        timeout = entry.get("timeout_s", 2.0)
        if not _num(timeout) or timeout <= 0:
            errors.append(f"{where}.timeout_s: {timeout!r} must be a number > 0 (seconds)")
            timeout = 2.0
        _check_resource(where, drv, entry.get("resource"), errors)
        limits = _check_limits(f"{where}.limits", entry.get("limits", {}), errors)
        for req in getattr(drv, "required_limits", ()):
            if req not in limits:
                errors.append(f"{where}.limits.{req}: missing; driver {drv_name!r} needs it before it may enable output "
                              f"(fix: add {req} = <value> under [{where}.limits])")
        _check_instrument_identity(where, entry, errors)
        rc = RoleConfig(role=role, driver=drv_name, resource=entry.get("resource"),
                        options={k: v for k, v in entry.items() if k not in _ROLE_KEYS},
                        limits=limits, timeout_s=float(timeout), source=src)
        try:
            errors += [f"{where}: {m}" for m in drv.validate_config(rc)]
        except Exception as e:  # a driver's validator must not crash profile checking
            errors.append(f"{where}: driver {drv_name!r} could not validate its options: {e!r}")
        roles[role] = rc
    if errors:
        raise ProfileError(errors, where=src)
    return BenchProfile(name=bench["name"], path=path, roles=roles, lab=lab_opts,
                        description=str(bench.get("description", "")),
                        laboratory=str(bench.get("laboratory", "")), operator=str(bench.get("operator", "")))


# ------------------------------------------------------------------------------------ DUT ---
ENERGY_SERVICES = {"DC", "AC", "DC_BPT", "AC_BPT", "WPT", "DC_ACDP", "DC_ACDP_BPT", "MCS", "MCS_BPT"}
CONTROL_MODES = {"SCHEDULED", "DYNAMIC"}
PROTOCOLS = {"ISO15118-20", "ISO15118-2", "DIN70121", "CHADEMO"}
AUTH_MODES = {"EIM", "PNC"}
OCPP_VERSIONS = {"2.0.1", "2.1", "1.6"}


@dataclass
class Rating:
    voltage_min_v: float
    voltage_max_v: float
    current_max_a: float
    power_max_w: float


@dataclass
class DutProfile:
    path: Path
    vendor: str
    model: str
    serial: str
    firmware: str
    energy_services: set[str]
    control_modes: set[str]
    protocols: set[str]
    auth: set[str]
    tls: bool
    ocpp_versions: set[str]
    security_profile: int | None
    features: set[str]
    charge: Rating
    discharge: Rating | None
    tolerances: dict[str, float] = field(default_factory=dict)
    pixit: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        return f"{self.vendor} {self.model} s/n {self.serial} fw {self.firmware}"

    def claimed(self) -> set[str]:
        """Every claim as one flat set of upper-case feature names."""
        out = set(self.energy_services) | set(self.control_modes) | set(self.protocols) | set(self.auth)
        out |= {f.upper() for f in self.features}
        out |= {f"OCPP{v}" for v in self.ocpp_versions}
        if self.tls:
            out.add("TLS")
        if self.security_profile:
            out |= {f"SP{n}" for n in range(1, self.security_profile + 1)}
        if self.discharge is not None:
            out.add("DISCHARGE")
        return out

    def claims(self, feature: str) -> bool:
        return feature.upper().replace(" ", "") in self.claimed()

    def tolerance(self, key: str, default: float) -> float:
        return float(self.tolerances.get(key, default))


def _rating(where: str, d: Any, errors: list[str]) -> Rating | None:
    if not isinstance(d, dict):
        errors.append(f"{where}: missing (fix: [{where}] with voltage_min_v, voltage_max_v, current_max_a, power_max_w)")
        return None
    vals = {}
    for k in ("voltage_min_v", "voltage_max_v", "current_max_a", "power_max_w"):
        v = d.get(k)
        if not _num(v):
            errors.append(f"{where}.{k}: missing or not a number (fix: {k} = <SI value>)")
            continue
        if v < 0:
            errors.append(f"{where}.{k}: {v:g} is negative (fix: ratings are magnitudes; the direction is the table name)")
        vals[k] = float(v)
    if len(vals) < 4:
        return None
    if vals["voltage_min_v"] > vals["voltage_max_v"]:
        errors.append(f"{where}: voltage_min_v = {vals['voltage_min_v']:g} > voltage_max_v = {vals['voltage_max_v']:g} (fix: min must be <= max)")
    for k in set(d) - set(vals) - {"voltage_min_v", "voltage_max_v", "current_max_a", "power_max_w"}:
        errors.append(f"{where}.{k}: unknown key")
    return Rating(**vals)


def _str_set(where: str, v: Any, allowed: set[str], errors: list[str]) -> set[str]:
    if v is None:
        return set()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        errors.append(f"{where}: must be a list of strings")
        return set()
    out = set()
    for x in v:
        X = x.upper().replace(" ", "")
        if allowed and X not in {a.upper() for a in allowed}:
            errors.append(f"{where}: {x!r} is not known (fix: one of {', '.join(sorted(allowed))})")
            continue
        out.add(X if X not in {"2.0.1", "2.1", "1.6"} else x)
    return out


def load_dut(path: str | Path) -> DutProfile:
    path = Path(path)
    data = _read_toml(path)
    errors: list[str] = []
    for k in sorted(set(data) - {"dut", "claims", "ratings", "tolerances", "pixit"}):
        errors.append(f"{k}: unknown top-level table (fix: use [dut], [claims], [ratings.charge], [ratings.discharge], [tolerances], [pixit])")
    dut = data.get("dut", {})
    for k in ("vendor", "model", "serial", "firmware"):
        if not isinstance(dut.get(k), str) or not dut.get(k):
            errors.append(f"dut.{k}: missing (fix: [dut] {k} = \"...\", it goes into every report)")
    c = data.get("claims", {})
    if not isinstance(c, dict):
        errors.append("claims: must be a table")
        c = {}
    known_claims = {"energy_services", "control_modes", "protocols", "auth", "tls", "ocpp_versions",
                    "security_profile", "features"}
    for k in sorted(set(c) - known_claims):
        errors.append(f"claims.{k}: unknown key (fix: one of {', '.join(sorted(known_claims))})")
    services = _str_set("claims.energy_services", c.get("energy_services"), ENERGY_SERVICES, errors)
    if not services:
        errors.append("claims.energy_services: the DUT claims no energy service (fix: e.g. [\"DC\", \"DC_BPT\"])")
    modes = _str_set("claims.control_modes", c.get("control_modes", ["scheduled"]), CONTROL_MODES, errors)
    protos = _str_set("claims.protocols", c.get("protocols", []), PROTOCOLS, errors)
    auth = _str_set("claims.auth", c.get("auth", ["EIM"]), AUTH_MODES, errors)
    ocpp = _str_set("claims.ocpp_versions", c.get("ocpp_versions", []), OCPP_VERSIONS, errors)
    tls = c.get("tls", False)
    if not isinstance(tls, bool):
        errors.append("claims.tls: must be true or false")
    sp = c.get("security_profile")
    if sp is not None and sp not in (1, 2, 3):
        errors.append(f"claims.security_profile: {sp!r} must be 1, 2 or 3 (OCPP security profiles)")
    if "PNC" in auth and not tls:
        errors.append("claims.auth: PnC is claimed without claims.tls = true (fix: Plug & Charge needs TLS)")
    ratings = data.get("ratings", {})
    charge = _rating("ratings.charge", ratings.get("charge"), errors)
    discharge = None
    if any(s.endswith("BPT") for s in services):
        discharge = _rating("ratings.discharge", ratings.get("discharge"), errors)
    elif "discharge" in ratings:
        errors.append("ratings.discharge: given but no bidirectional energy service is claimed (fix: add DC_BPT or AC_BPT, or remove it)")
    tol = data.get("tolerances", {})
    tolerances = {}
    for k, v in tol.items():
        if not _num(v) or v < 0:
            errors.append(f"tolerances.{k}: {v!r} must be a number >= 0")
        else:
            tolerances[k] = float(v)
    if errors:
        raise ProfileError(errors, where=str(path))
    return DutProfile(path=path, vendor=dut["vendor"], model=dut["model"], serial=dut["serial"],
                      firmware=dut["firmware"], energy_services=services, control_modes=modes, protocols=protos,
                      auth=auth, tls=bool(tls), ocpp_versions=ocpp, security_profile=sp,
                      features={f.upper() for f in c.get("features", [])}, charge=charge, discharge=discharge,
                      tolerances=tolerances, pixit=dict(data.get("pixit", {})))


def check_profile(path: str | Path) -> BenchProfile | DutProfile:
    """Validate either kind: a file with [roles] is a bench profile, one with [dut] a DUT profile."""
    path = Path(path)
    data = _read_toml(path)
    if "roles" in data or "bench" in data:
        return load_bench(path)
    if "dut" in data or "claims" in data:
        return load_dut(path)
    raise ProfileError(["neither a bench profile ([bench] + [roles.*]) nor a DUT profile ([dut] + [claims])"],
                       where=str(path))
