"""Transports, made ONLY from a role's configured resource string / options.

  VISA (pyvisa + pyvisa-py, `@py`):  TCPIP0::host::port::SOCKET  (needs terminations)
                                      TCPIP0::host::inst0::INSTR   (VXI-11)
                                      ASRL/dev/ttyUSB0::INSTR       (serial)
  Modbus (pymodbus):                  modbus+tcp://host:502?device_id=1
                                      modbus+rtu:///dev/ttyUSB0?baudrate=9600&parity=N&device_id=2
  CAN (python-can):                   role options `interface`, `channel` (+ interface kwargs,
                                      e.g. socketcand `host`, `port`)
The same code path serves a real bench and the virtual lab; only the strings differ.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from v2g_bench.errors import InstrumentError, ProfileError


def role_label(cfg) -> str:
    """How an instrument is named in every error: role, driver and resource."""
    return f"{cfg.role} [{cfg.driver} @ {cfg.resource}]"


def open_visa_for(cfg, session: dict | None = None) -> tuple[str, Any]:
    """(label, pyvisa resource) for a role config, with the profile's [session] terminations."""
    session = session or {}
    label = role_label(cfg)
    return label, open_visa(cfg.resource, name=label, timeout_s=cfg.timeout_s,
                            read_termination=session.get("read_termination", "\n"),
                            write_termination=session.get("write_termination", "\n"))


def initialized(drv):
    """Run the driver's initialize(); on any failure close its transport before re-raising."""
    try:
        drv.initialize()
    except BaseException:
        drv.close()
        raise
    return drv


def open_visa(resource: str, *, name: str, timeout_s: float = 2.0, read_termination: str = "\n",
              write_termination: str = "\n", baud_rate: int | None = None):
    """A pymeasure VISAAdapter on the pyvisa-py backend, or InstrumentError naming the resource."""
    from pymeasure.adapters import VISAAdapter  # lazy: keep `import v2g_bench.instruments` light

    kwargs: dict[str, Any] = {"timeout": int(timeout_s * 1000)}
    upper = resource.upper()
    if upper.endswith("::SOCKET") or upper.startswith("ASRL"):
        # Raw sockets and serial lines have no message framing: terminations are mandatory.
        kwargs.update(read_termination=read_termination, write_termination=write_termination)
    if upper.startswith("ASRL") and baud_rate:
        kwargs["asrl"] = {"baud_rate": baud_rate}
    try:
        adapter = VISAAdapter(resource, visa_library="@py", **kwargs)
    except Exception as e:
        raise InstrumentError(f"cannot open VISA resource ({type(e).__name__}: {e})", instrument=name,
                              command=None, fix=f"check the resource string {resource!r} and that the "
                                                "instrument is reachable") from e
    if upper.endswith("::SOCKET"):
        _no_nagle(adapter)
    return adapter


def _no_nagle(adapter) -> None:
    """pyvisa-py's SOCKET sessions leave Nagle on (and refuse VI_ATTR_TCPIP_NODELAY): every write followed by a
    query then waits ~40 ms for the delayed ACK, which makes a hard stop slow. Set TCP_NODELAY on the session's
    socket where pyvisa-py exposes it; a backend that does not is left as it is."""
    import socket
    try:
        res = adapter.connection
        sock = res.visalib.sessions[res.session].interface
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except Exception:  # noqa: BLE001, S110 - an optimisation, never a reason to fail opening
        pass


@dataclass
class ModbusResource:
    kind: str                 # "tcp" | "rtu"
    host: str = ""
    port: int = 502
    device: str = ""          # serial port for RTU
    device_id: int = 1
    serial: dict[str, Any] = field(default_factory=dict)


def parse_modbus_resource(resource: str, where: str = "resource") -> ModbusResource:
    u = urlparse(resource)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    try:
        device_id = int(q.pop("device_id", "1"))
        if u.scheme == "modbus+tcp":
            if not u.hostname:
                raise ValueError("no host")
            return ModbusResource("tcp", host=u.hostname, port=u.port or 502, device_id=device_id)
        if u.scheme == "modbus+rtu":
            serial = {"baudrate": int(q.pop("baudrate", "9600")), "parity": q.pop("parity", "N"),
                      "stopbits": int(q.pop("stopbits", "1")), "bytesize": int(q.pop("bytesize", "8"))}
            if not u.path:
                raise ValueError("no serial device")
            return ModbusResource("rtu", device=u.path, device_id=device_id, serial=serial)
        raise ValueError(f"unknown scheme {u.scheme!r}")
    except ValueError as e:
        raise ProfileError([f"bad Modbus resource {resource!r} ({e}); use "
                            "'modbus+tcp://host:port?device_id=N' or "
                            "'modbus+rtu:///dev/ttyX?baudrate=9600&parity=N&device_id=N'"], where=where) from None


def open_modbus(res: ModbusResource, *, name: str, timeout_s: float = 2.0):
    """A connected pymodbus sync client (retries=0: a dead meter must fail fast, not hang)."""
    from pymodbus.client import ModbusSerialClient, ModbusTcpClient

    if res.kind == "tcp":
        client = ModbusTcpClient(res.host, port=res.port, timeout=timeout_s, retries=0)
        target = f"{res.host}:{res.port}"
    else:
        client = ModbusSerialClient(res.device, timeout=timeout_s, retries=0, **res.serial)
        target = res.device
    if not client.connect():
        client.close()
        raise InstrumentError(f"cannot connect Modbus {res.kind.upper()} to {target}", instrument=name,
                              fix="check the resource string, the device's address and that it is powered")
    return client


def open_can_bus(options: dict[str, Any], *, name: str, where: str = "options"):
    """python-can Bus from role options: interface, channel and interface-specific keys."""
    import can

    opts = {k: v for k, v in options.items() if k not in ("dbc", "profile", "node", "send_periodic",
                                                           "receive_own_messages")}
    if isinstance(opts.get("port"), str) and opts["port"].isdigit():   # `{lab.ports.can}` arrives as text
        opts["port"] = int(opts["port"])
    if "interface" not in opts or "channel" not in opts:
        raise ProfileError(["CAN role needs `interface` and `channel` (e.g. interface = \"socketcand\", "
                            "channel = \"vcan0\", host = \"127.0.0.1\", port = 29536)"], where=where)
    err: Exception | None = None
    for attempt in range(3):
        try:
            return can.Bus(**opts)
        except can.CanError as e:
            # python-can's socketcand client compares its whole first read with '< ok >' after '< rawmode >': on a
            # busy bus the daemon's first frames arrive in the same read and the handshake fails. Retry it.
            if "Expected '< ok >'" in str(e) and attempt < 2:
                continue
            err = e
            break
        except Exception as e:
            err = e
            break
    raise InstrumentError(f"cannot open CAN bus ({type(err).__name__}: {err})", instrument=name,
                          fix="check interface/channel and that the CAN gateway is reachable") from err
