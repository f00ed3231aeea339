"""Bench and DUT profiles (TOML): loading and strict validation.

A *bench profile* maps roles to drivers, resource strings, options and limits. A *DUT profile*
(the lab's PICS/PIXIT) declares what the charger claims. Validation collects every problem and
names the file, the key and the fix; it never stops at the first. The shape of each file is the
pydantic schema in profile_schema.py (unknown keys refused with a "did you mean", types, NaN/inf);
here: drivers, resource strings, limits vs the instrument's rated values, and `check_compatible`
(DUT ratings vs what the bench can supply or absorb).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2g_bench.profiles import profile_schema as schema
from v2g_bench.errors import DriverNotFound, ProfileError
from v2g_bench.profiles.profile_schema import ROLE_KEYS, did_you_mean
from v2g_bench.roles import KNOWN_ROLES, RoleConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO_ROOT / "profiles"
DEFAULT_BENCH = PROFILES_DIR / "virtual-lab.bench.toml"
DEFAULT_DUT = PROFILES_DIR / "virtual-dut.dut.toml"

_PLACEHOLDER = re.compile(r"\{lab\.([A-Za-z0-9_.]+)\}")
_ROLE_KEYS = {"driver", "resource", "timeout_s", "limits", "description"}   # not driver options


def _read_toml(path: Path) -> dict:
    """The file as a dict, or ProfileError saying what is wrong with the file itself (never a traceback)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError([f"file not found (fix: check the path, e.g. {DEFAULT_BENCH.relative_to(REPO_ROOT)})"],
                           where=str(path)) from None
    except IsADirectoryError:
        raise ProfileError(["is a directory, not a profile file (fix: name a .toml file)"], where=str(path)) from None
    except OSError as e:
        raise ProfileError([f"cannot be read: {e.strerror or e} (fix: check its permissions)"], where=str(path)) from None
    if not raw.strip():
        raise ProfileError(["the file is empty (fix: start from profiles/virtual-lab.bench.toml or "
                            "profiles/virtual-dut.dut.toml)"], where=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError([f"not a text file: byte {e.start} is not UTF-8 (fix: a profile is a UTF-8 TOML text file)"],
                           where=str(path)) from None
    if "\x00" in text:
        raise ProfileError(["not a text file: it contains NUL bytes (fix: a profile is a UTF-8 TOML text file)"],
                           where=str(path))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError([f"not valid TOML: {e} (fix: correct the syntax at that line)"], where=str(path)) from None
    except RecursionError:
        raise ProfileError(["not valid TOML: nested too deeply"], where=str(path)) from None


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


def _check_limits(where: str, limits: dict[str, float], errors: list[str]) -> None:
    """Pairs and signs the schema cannot see: foo_min_x <= foo_max_x; maxima and capacities > 0."""
    for k, v in limits.items():
        if "_min_" in k:
            k_max = k.replace("_min_", "_max_")
            if k_max in limits and v > limits[k_max]:
                errors.append(f"{where}: {k} = {v:g} is above {k_max} = {limits[k_max]:g} (fix: min must be <= max)")
        if any(s in k for s in ("capacity", "power_max", "voltage_max")) and v <= 0:
            errors.append(f"{where}.{k}: {v:g} must be > 0 (fix: a positive value in SI units)")


# Limit keys a role may give: the ones the drivers read (dc_source.DCLimits, modbus_charger). A driver
# with other limits declares them in `required_limits` (or `optional_limits`), which extends this set.
KNOWN_LIMITS = ("voltage_min_v", "voltage_max_v", "current_charge_max_a", "current_discharge_max_a",
                "power_max_w", "ovp_v")


def _check_limit_keys(where: str, drv: Any, limits: dict[str, float], errors: list[str]) -> None:
    known = set(KNOWN_LIMITS) | set(getattr(drv, "required_limits", ())) | set(getattr(drv, "optional_limits", ()))
    for k in limits:
        if k not in known:
            errors.append(f"{where}.{k}: unknown limit{did_you_mean(k, known)} "
                          f"(known: {', '.join(sorted(known))})")


def instrument_ratings(drv: Any, options: dict) -> tuple[dict[str, float], str] | None:
    """The instrument's ratings from its instrument profile (`[ratings.<model>]`) and where they came from.

    The role option `model` picks one model; without it, the largest rating of the family (a limit
    above that is wrong for every model). None when the profile gives no ratings."""
    pname = options.get("profile", getattr(drv, "profile_name", None))
    if not isinstance(pname, str):
        return None
    from v2g_bench.instruments.profile import load_profile
    try:
        prof = load_profile(pname, getattr(drv, "profile_kind", "scpi"))
    except Exception:  # noqa: BLE001 - the driver's own validate_config reports a broken profile
        return None
    ratings = prof.get("ratings")
    if not isinstance(ratings, dict) or not ratings:
        return None
    model = options.get("model")
    if isinstance(model, str):
        if model not in ratings:
            raise ValueError(f"model {model!r} is not in the instrument profile's [ratings] "
                             f"({', '.join(sorted(ratings))}){did_you_mean(model, ratings)}")
        return dict(ratings[model]), f"{pname} {model}"
    family = (prof.get("model") or {}).get("models") or []
    if any(m not in ratings for m in family):
        return None                  # the family's largest rating is unknown: no check without `model`
    out: dict[str, float] = {}
    for r in ratings.values():
        for k, v in r.items():
            if isinstance(v, (int, float)):
                out[k] = max(out.get(k, 0.0), float(v))
    return out, f"{pname} (largest of {', '.join(sorted(ratings))}; set the role option model = \"...\")"


# limit key -> the rating it must not exceed
_LIMIT_VS_RATING = {"voltage_max_v": "voltage_max_v", "ovp_v": "voltage_max_v",
                    "current_charge_max_a": "current_max_a", "current_discharge_max_a": "current_max_a",
                    "power_max_w": "power_max_w"}


def _check_ratings(where: str, drv: Any, options: dict, limits: dict[str, float], errors: list[str]) -> None:
    try:
        got = instrument_ratings(drv, options)
    except ValueError as e:
        errors.append(f"{where}.model: {e}")
        return
    if got is None:
        return
    rating, source = got
    for lim, rkey in _LIMIT_VS_RATING.items():
        if lim in limits and rkey in rating and limits[lim] > rating[rkey]:
            errors.append(f"{where}.limits.{lim}: {limits[lim]:g} is above the instrument's rating "
                          f"{rkey} = {rating[rkey]:g} ({source}) (fix: at most {rating[rkey]:g})")


# An option named like a quantity (`watchdog_s`, `idle_power_w`) is a number: "2" or true there is a typo.
_UNIT_SUFFIXES = ("_s", "_v", "_a", "_w", "_wh", "_hz", "_pct", "_ohm")


def _check_role_options(where: str, drv: Any, options: dict, errors: list[str]) -> None:
    """Options are the driver's; a near-miss of a common role key is a typo (`timout_s`), and a driver
    that declares `option_keys` gets all others refused."""
    declared = getattr(drv, "option_keys", None)
    for k, v in options.items():
        if isinstance(v, float) and not math.isfinite(v):
            errors.append(f"{where}.{k}: must be a finite number, got {v!r}")
        elif k.endswith(_UNIT_SUFFIXES) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            errors.append(f"{where}.{k}: must be a number in SI units (the name says so), got "
                          f"{type(v).__name__} {v!r}"[:200])
        elif k.endswith("_s") and v < 0:
            errors.append(f"{where}.{k}: a time must be >= 0, got {v!r}")
        if declared is not None:
            if k not in declared:
                known = set(declared) | set(ROLE_KEYS)
                errors.append(f"{where}.{k}: unknown key for driver {drv.__name__}{did_you_mean(k, known)} "
                              f"(known: {', '.join(sorted(known))})")
            continue
        hint = did_you_mean(k, ROLE_KEYS)
        if hint and difflib.SequenceMatcher(None, k, hint.split("'")[1]).ratio() >= 0.8:
            errors.append(f"{where}.{k}: unknown key{hint}")


def _check_calibration(where: str, due: Any, errors: list[str]) -> None:
    if due is None or isinstance(due, _dt.date):
        return
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
    top, errors = schema.validate(schema.BenchFile, data)
    bench = data.get("bench") if isinstance(data.get("bench"), dict) else {}
    lab_opts = data.get("lab") if isinstance(data.get("lab"), dict) else None
    if bench.get("lab") is None and "lab" in data:
        errors.append("lab: options given but bench.lab is not set (fix: add lab = \"builtin\" to [bench])")
    if bench.get("lab") is not None and lab_opts is None:
        lab_opts = {}
    if bench.get("lab") is None:
        lab_opts = None
    roles_in = data.get("roles") if isinstance(data.get("roles"), dict) else {}
    if "roles" in data and not roles_in:
        errors.append("roles: no roles defined (fix: add [roles.<role>] tables, roles: " + ", ".join(KNOWN_ROLES) + ")")
    roles: dict[str, RoleConfig] = {}
    for role, entry in roles_in.items():
        where = f"roles.{role}"
        if role not in KNOWN_ROLES:
            errors.append(f"{where}: unknown role {role!r}{did_you_mean(role, KNOWN_ROLES)} "
                          f"(fix: one of {', '.join(KNOWN_ROLES)})")
            continue
        if not isinstance(entry, dict):
            continue                                     # the schema said "must be a table"
        model, errs = schema.validate(schema.RoleEntry, entry)
        errors += [f"{where}.{m}" for m in errs]
        if model is None:
            continue
        drv_name = model.driver
        try:
            drv = get_driver(drv_name)
        except DriverNotFound as e:
            errors.append(f"{where}.driver: {e}")
            continue
        if drv.roles and role not in drv.roles:
            errors.append(f"{where}.driver: {drv_name!r} cannot play role {role!r} (it plays {', '.join(drv.roles)})")
        _check_resource(where, drv, model.resource, errors)
        limits = {k: float(v) for k, v in model.limits.items()}
        _check_limits(f"{where}.limits", limits, errors)
        _check_limit_keys(f"{where}.limits", drv, limits, errors)
        for req in getattr(drv, "required_limits", ()):
            if req not in limits:
                errors.append(f"{where}.limits.{req}: missing; driver {drv_name!r} needs it before it may enable output "
                              f"(fix: add {req} = <value> under [{where}.limits])")
        _check_calibration(where, model.calibration_due, errors)
        options = {k: v for k, v in entry.items() if k not in _ROLE_KEYS}
        _check_role_options(where, drv, {k: v for k, v in options.items() if k not in schema.ROLE_KEYS}, errors)
        _check_ratings(where, drv, options, limits, errors)
        rc = RoleConfig(role=role, driver=drv_name, resource=model.resource, options=options,
                        limits=limits, timeout_s=float(model.timeout_s), source=src)
        try:
            errors += [f"{where}: {m}" for m in drv.validate_config(rc)]
        except Exception as e:  # a driver's validator must not crash profile checking
            errors.append(f"{where}: driver {drv_name!r} could not validate its options: {e!r}")
        roles[role] = rc
    if errors or top is None:
        raise ProfileError(errors or ["invalid bench profile"], where=src)
    return BenchProfile(name=bench["name"], path=path, roles=roles, lab=lab_opts,
                        description=str(bench.get("description", "")),
                        laboratory=str(bench.get("laboratory", "")), operator=str(bench.get("operator", "")))


def _visa_problem(resource: str) -> str | None:
    """What is wrong with a VISA resource string (None = fine), with the likely intended string."""
    from pyvisa import rname
    if resource != resource.strip():
        return f"has spaces around it (fix: {resource.strip()!r})"
    probe = _PLACEHOLDER.sub("1", resource)   # placeholders are ports: validate the shape
    upper_tail = re.sub(r"::(socket|instr)$", lambda m: "::" + m.group(1).upper(), probe)
    try:
        parsed = rname.parse_resource_name(probe)
    except Exception as e:  # pyvisa raises InvalidResourceName (a ValueError subclass)
        if upper_tail != probe:
            return f"is not a VISA resource string: the resource class is upper case (fix: {upper_tail!r})"
        return f'is not a VISA resource string ({e}) (fix: e.g. "TCPIP0::10.0.0.5::5025::SOCKET")'
    if isinstance(parsed, rname.TCPIPSocket):
        port = str(parsed.port)
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            return f"has port {port!r}: a TCP port is a number 1..65535 (fix: e.g. \"TCPIP0::{parsed.host_address}::5025::SOCKET\")"
    if isinstance(parsed, rname.TCPIPInstr) and parsed.lan_device_name.isdigit():
        return (f"names LAN device {parsed.lan_device_name!r}, which looks like a port; did you mean "
                f"'TCPIP0::{parsed.host_address}::{parsed.lan_device_name}::SOCKET'?")
    return None


def _check_resource(where: str, driver_cls: Any, resource: Any, errors: list[str]) -> None:
    transport = getattr(driver_cls, "transport", "none")
    if transport == "visa":
        if not isinstance(resource, str) or not resource:
            errors.append(f"{where}.resource: missing (fix: a VISA resource string, e.g. "
                          "\"TCPIP0::10.0.0.5::5025::SOCKET\" or \"ASRL/dev/ttyUSB0::INSTR\")")
            return
        problem = _visa_problem(resource)
        if problem:
            errors.append(f"{where}.resource: {resource!r} {problem}")
    elif transport in ("modbus", "can") and resource is not None and not isinstance(resource, str):
        errors.append(f"{where}.resource: must be a string")




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


def _claim_set(where: str, values: list[str], allowed: set[str], errors: list[str]) -> set[str]:
    out = set()
    upper = {a.upper(): a for a in allowed}
    for x in values:
        X = x.upper().replace(" ", "")
        if allowed and X not in upper:
            errors.append(f"{where}: {x!r} is not known{did_you_mean(X, upper)} (fix: one of {', '.join(sorted(allowed))})")
            continue
        out.add(X if X not in OCPP_VERSIONS else x)
    return out


def load_dut(path: str | Path) -> DutProfile:
    """Load and validate a DUT profile (PICS/PIXIT); raise ProfileError listing every problem."""
    path = Path(path)
    data = _read_toml(path)
    model, errors = schema.validate(schema.DutFile, data)
    # the claimed names are checked even when another key failed the schema: every problem at once
    raw = data.get("claims") if isinstance(data.get("claims"), dict) else {}

    def names(key: str, default: list[str]) -> list[str]:
        v = raw.get(key, default)
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

    services = _claim_set("claims.energy_services", names("energy_services", []), ENERGY_SERVICES, errors)
    if isinstance(raw.get("energy_services"), list) and not raw["energy_services"]:
        errors.append("claims.energy_services: the DUT claims no energy service (fix: e.g. [\"DC\", \"DC_BPT\"])")
    modes = _claim_set("claims.control_modes", names("control_modes", ["scheduled"]), CONTROL_MODES, errors)
    protos = _claim_set("claims.protocols", names("protocols", []), PROTOCOLS, errors)
    auth = _claim_set("claims.auth", names("auth", ["EIM"]), AUTH_MODES, errors)
    ocpp = _claim_set("claims.ocpp_versions", names("ocpp_versions", []), OCPP_VERSIONS, errors)
    if model is None:
        raise ProfileError(errors, where=str(path))
    c = model.claims
    if "PNC" in auth and not c.tls:
        errors.append("claims.auth: PnC is claimed without claims.tls = true (fix: Plug & Charge needs TLS)")
    r = model.ratings
    for name, rating in (("charge", r.charge), ("discharge", r.discharge)):
        if rating is not None and rating.voltage_min_v > rating.voltage_max_v:
            errors.append(f"ratings.{name}: voltage_min_v = {rating.voltage_min_v:g} > voltage_max_v = "
                          f"{rating.voltage_max_v:g} (fix: min must be <= max)")
    bidirectional = any(s.endswith("BPT") for s in services)
    if bidirectional and r.discharge is None:
        errors.append("ratings.discharge: missing (fix: [ratings.discharge] with voltage_min_v, voltage_max_v, "
                      "current_max_a, power_max_w: a bidirectional service is claimed)")
    if not bidirectional and r.discharge is not None:
        errors.append("ratings.discharge: given but no bidirectional energy service is claimed "
                      "(fix: add DC_BPT or AC_BPT, or remove it)")
    if errors:
        raise ProfileError(errors, where=str(path))

    def rating(m: schema.Rating | None) -> Rating | None:
        return None if m is None else Rating(m.voltage_min_v, m.voltage_max_v, m.current_max_a, m.power_max_w)

    d = model.dut
    return DutProfile(path=path, vendor=d.vendor, model=d.model, serial=d.serial, firmware=d.firmware,
                      energy_services=services, control_modes=modes, protocols=protos, auth=auth, tls=c.tls,
                      ocpp_versions=ocpp, security_profile=c.security_profile,
                      features={f.upper() for f in c.features}, charge=rating(r.charge),
                      discharge=rating(r.discharge) if bidirectional else None,
                      tolerances={k: float(v) for k, v in model.tolerances.dict().items() if v is not None},
                      pixit=dict(data.get("pixit", {})))


def check_compatible(bench: BenchProfile, dut: DutProfile) -> None:
    """Refuse, before anything is energized, a DUT whose ratings the bench cannot supply or absorb.

    The battery role carries the DUT's DC power: charging, it absorbs up to the DUT's charge rating;
    discharging, it supplies the DUT's discharge rating. Its limits must cover both, and its voltage
    window must overlap the DUT's."""
    battery = bench.roles.get("battery")
    if battery is None or not battery.limits:
        return
    lim = battery.limits
    errors = []
    checks = [("charge", dut.charge, "current_max_a", "current_charge_max_a"),
              ("charge", dut.charge, "power_max_w", "power_max_w"),
              ("discharge", dut.discharge, "current_max_a", "current_discharge_max_a"),
              ("discharge", dut.discharge, "power_max_w", "power_max_w")]
    for direction, rating, rkey, lkey in checks:
        if rating is None or lkey not in lim:
            continue
        need = getattr(rating, rkey)
        if need > lim[lkey]:
            verb = "absorb" if direction == "charge" else "supply"
            errors.append(f"ratings.{direction}.{rkey} = {need:g} is more than the bench can {verb}: "
                          f"roles.battery.limits.{lkey} = {lim[lkey]:g} in {bench.path.name} (fix: lower the DUT "
                          f"rating under test, or a battery emulator rated for it)")
    vmax = lim.get("voltage_max_v")
    for direction, rating in (("charge", dut.charge), ("discharge", dut.discharge)):
        if rating is not None and vmax is not None and rating.voltage_min_v > vmax:
            errors.append(f"ratings.{direction}.voltage_min_v = {rating.voltage_min_v:g} is above the bench's "
                          f"roles.battery.limits.voltage_max_v = {vmax:g} in {bench.path.name}: no common voltage")
    if errors:
        raise ProfileError(errors, where=str(dut.path))


def check_profile(path: str | Path) -> BenchProfile | DutProfile:
    """Validate either kind: a file with [roles] is a bench profile, one with [dut] a DUT profile."""
    path = Path(path)
    data = _read_toml(path)
    if "roles" in data or "bench" in data:
        return load_bench(path)
    if "dut" in data or "claims" in data:
        return load_dut(path)
    raise ProfileError(["neither a bench profile ([bench] + [roles.*]) nor a DUT profile ([dut] + [claims])"
                        f"; its tables: {', '.join(map(str, data)) or 'none'}"], where=str(path))
