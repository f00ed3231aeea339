"""`v2g-bench doctor`: what is missing, each with the fix."""
from __future__ import annotations

import importlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from v2g_bench.errors import BenchError

console = Console()

REQUIRED_MODULES = {"iso15118": "iso15118==0.31.2", "aiofile": "aiofile", "ocpp": "ocpp==2.1.0",
                    "websockets": "websockets>=14", "pyvisa": "pyvisa", "pyvisa_py": "pyvisa-py",
                    "can": "python-can", "cantools": "cantools", "pymodbus": "pymodbus", "serial": "pyserial",
                    "scapy": "scapy", "highspy": "highspy", "allure_pytest": "allure-pytest",
                    "matplotlib": "matplotlib", "hypothesis": "hypothesis"}


def _check_veth() -> tuple[bool, str]:
    """Can we create a veth pair (root or CAP_NET_ADMIN)? Tried for real, then removed."""
    if shutil.which("ip") is None:
        return False, "the 'ip' command is missing (fix: apt-get install iproute2)"
    name = f"v2gdoc{os.getpid() % 100000}"
    try:
        r = subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "b"],
                           capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False, "'ip link add' timed out"
    if r.returncode != 0:
        return False, (f"cannot create a veth pair ({r.stderr.strip()}); ISO 15118 tests will skip "
                       "(fix: run as root, or grant CAP_NET_ADMIN, or use 'unshare -rn')")
    subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=5)
    return True, "veth pairs can be created (ISO 15118 over a veth pair works)"


def _clean_leftovers() -> tuple[bool, str]:
    """Stale labs, veths and namespaces of earlier (killed) runs: found and removed."""
    from v2g_bench.harness import leftovers
    found, problems = leftovers.remove_all()
    if problems:
        return False, ("could not remove: " + "; ".join(problems)
                       + " (fix: run as root, or remove them with kill / ip link del / ip netns del)")
    if not found:
        return True, "none (no stale virtual lab, veth or namespace)"
    return True, "removed " + ", ".join(f"{kind} {name} ({why})" for kind, name, why in found)


def _tcp_reachable(host: str, port: int, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} accepts connections"
    except OSError as e:
        return False, f"{host}:{port} unreachable ({e})"


def run_doctor(bench_path: Path | None) -> int:
    rows: list[tuple[str, bool, str]] = []
    rows.append(("python", sys.version_info >= (3, 11), f"{sys.version.split()[0]} ({sys.executable})"
                 + ("" if sys.version_info >= (3, 12) else "; 3.12 is preferred (3.11 loses task cancellations in ocpp's call())")))
    for mod, pkg in REQUIRED_MODULES.items():
        try:
            importlib.import_module(mod)
            rows.append((pkg, True, "installed"))
        except Exception as e:  # noqa: BLE001 - report any import failure
            rows.append((pkg, False, f"{type(e).__name__}: {e} (fix: make bootstrap, or pip install '{pkg}')"))
    java = shutil.which("java")
    rows.append(("java", java is not None, java or "missing (fix: apt-get install default-jre-headless); the iso15118 EXI codec and the Allure CLI need it"))
    from v2g_bench.harness.runner import allure_cli
    a = allure_cli()
    rows.append(("allure CLI", a is not None, a or "missing (fix: make bootstrap, or npm install --prefix .tools/allure allure-commandline)"))
    rows.append(("veth/netns", *_check_veth()))
    rows.append(("leftovers of killed runs", *_clean_leftovers()))
    from v2g_bench.cli import _missing_sub_apps
    for name, err in _missing_sub_apps.items():
        rows.append((f"command '{name}'", False, err))
    if bench_path is not None:
        from v2g_bench.profiles import load_bench
        try:
            bench = load_bench(bench_path)
            rows.append((f"profile {bench_path}", True, f"valid ({len(bench.roles)} roles)"))
            for role, cfg in bench.roles.items():
                rows.append((f"role {role}", *_role_reachability(cfg, bench.uses_builtin_lab)))
        except BenchError as e:
            rows.append((f"profile {bench_path}", False, str(e)))
    t = Table(title="v2g-bench doctor")
    t.add_column("check")
    t.add_column("ok")
    t.add_column("detail / fix")
    for name, ok, detail in rows:
        t.add_row(name, "[green]yes[/green]" if ok else "[red]NO[/red]", detail)
    console.print(t)
    return 0 if all(ok for _, ok, _ in rows) else 1


def _role_reachability(cfg, builtin_lab: bool) -> tuple[bool, str]:
    res = cfg.resource or ""
    if "{lab." in res:
        return True, f"{cfg.driver}: served by the built-in virtual lab ({res})"
    if res.upper().startswith("TCPIP"):
        parts = res.split("::")
        if len(parts) >= 3 and parts[2].isdigit():
            return _tcp_reachable(parts[1], int(parts[2]))
        if len(parts) >= 2:
            return _tcp_reachable(parts[1], 111)  # VXI-11 portmapper
    host, port = cfg.options.get("host"), cfg.options.get("port")
    if isinstance(host, str) and isinstance(port, int):
        return _tcp_reachable(host, port)
    if res.upper().startswith("ASRL"):
        dev = res[4:].split("::")[0]
        ok = Path(dev).exists()
        return ok, f"serial device {dev} {'exists' if ok else 'is missing'}"
    return True, f"{cfg.driver}: no network resource to probe"
