"""The ISO 15118 wire between the EV emulator (in the test process) and the lab process's SECC.

    with lab_network({"secc": {"protocols": ["ISO_15118_20_DC"]}}) as net:
        if net.unavailable:                       # no CAP_NET_ADMIN / no veth: the reason to skip with
            ...
        lab = start_lab(overrides=net.overrides)  # enables [services.secc] on the SECC veth end
        ev = EVEmulator.open(RoleConfig("ev", "iso15118_evcc", options=dict(net.ev_options)), ctx)

Creates one EvNetns (the EV end lives there so every V2GTP byte crosses the veth, see netns.py) and
one VethPair; removes both on exit, also on error. The lab process runs in the root namespace and
binds its SECC to `secc_iface`; the SECC service writes `{"iso15118": {...}}` into the lab's ready
file (see lab_secc.start_service), so `EVEmulator.open` finds the wire from `ctx.lab.info` too.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from v2g_bench.ev import netns as _netns

SECC_MODULE = "v2g_bench.lab.charger.secc"
SECC_KEYS = {"protocols", "tls", "auth", "max_charge_w", "max_discharge_w", "codec", "tls13", "enforce_tls",
             "pki_path", "sequence_timeout_s"}


def toml_value(v) -> str:
    """A value as TOML text: the lab's `--set key=value` parses the right side as TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)             # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot express {v!r} as a TOML value")


@dataclass
class LabNetwork:
    """What the harness needs: `overrides` for the lab process, `ev_options` for [roles.ev]."""

    overrides: dict[str, str] = field(default_factory=dict)   # dotted key -> TOML text
    ev_options: dict[str, object] = field(default_factory=dict)
    unavailable: str | None = None                            # skip reason, or None
    pair: _netns.VethPair | None = None
    ns: _netns.EvNetns | None = None

    @property
    def secc_iface(self) -> str | None:
        return self.pair.secc_iface if self.pair else None


def unavailable_reason() -> str | None:
    return _netns.veth_unavailable_reason() or _netns.netns_unavailable_reason()


@contextmanager
def lab_network(opts: dict | None = None) -> Iterator[LabNetwork]:
    """Create the EV netns + veth pair for one lab process; yield the overrides and EV options.

    `opts` (all optional): `secc` = extra [services.secc] keys (protocols, tls, auth, max_charge_w,
    max_discharge_w, codec); `enabled` = False to skip the set-up entirely.
    Without the capability, yields a LabNetwork with empty overrides and `.unavailable` = the reason
    (the lab then runs without its SECC; ISO 15118 tests skip with that reason).
    """
    opts = dict(opts or {})
    if opts.get("enabled", True) is False:
        yield LabNetwork(unavailable="ISO 15118 wire disabled in the lab options (iso15118.enabled = false)")
        return
    why = unavailable_reason()
    if why:
        yield LabNetwork(unavailable=why)
        return
    secc = dict(opts.get("secc") or {})
    unknown = set(secc) - SECC_KEYS
    if unknown:
        from v2g_bench.errors import ProfileError
        raise ProfileError([f"lab.iso15118.secc.{k}: unknown key (known: {', '.join(sorted(SECC_KEYS))})"
                            for k in sorted(unknown)], where="bench profile [lab.iso15118.secc]")
    ns = _netns.EvNetns()
    pair = None
    try:
        pair = _netns.VethPair.create(ev_netns=ns)
        ev_options: dict[str, object] = {"interface": pair.ev_iface, "netns": ns.name}
        if secc.get("tls"):
            # EV and SECC must trust the same V2G root: one PKI, made here, handed to both
            from v2g_bench.ev.pki import ensure_pki
            secc.setdefault("pki_path", str(ensure_pki(secc.get("pki_path"), apply=False)))
            ev_options["pki_path"] = secc["pki_path"]
        svc = {"enabled": True, "module": SECC_MODULE, "iface": pair.secc_iface,
               # only for the ready file: lets EVEmulator.open find the EV end from ctx.lab.info
               "ev_iface": pair.ev_iface, "ev_netns": ns.name, **secc}
        overrides = {f"services.secc.{k}": toml_value(v) for k, v in svc.items()}
        yield LabNetwork(overrides=overrides, ev_options=ev_options,
                         pair=pair, ns=ns)
    finally:
        if pair is not None:
            pair.remove()
        ns.delete()
