"""A test PKI for Plug & Charge / TLS, generated at test time by the stack's own `create_certs.sh`.

Never committed: it goes into a temp dir (or the dir given) and `PKI_PATH` points there. Why the
shipped script: it is what iso15118 reads (file names, password files), so our PKI matches it by
construction. The stack reads every certificate from `<PKI_PATH>/iso15118_2/...`, also for -20
sessions (hard-coded paths in iso15118.shared.security), so the `iso-2` variant serves -2 and -20;
`-v iso-20` would write `iso15118_20/`, which 0.31.2 never reads.

The EV (this process) and the lab's SECC (the lab process) must share ONE PKI, or the TLS handshake
fails: labnet passes the directory to the SECC as `services.secc.pki_path`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from v2g_bench.errors import BenchError

_lock = threading.Lock()
_made: dict[str, Path] = {}
MARKER = "v2g-bench-pki.ok"
NEEDED = ("iso15118_2/certs/cpoCertChain.pem", "iso15118_2/certs/v2gRootCACert.pem",
          "iso15118_2/certs/oemCertChain.pem", "iso15118_2/certs/oemRootCACert.pem",
          "iso15118_2/private_keys/seccLeaf.key", "iso15118_2/private_keys/oemLeaf.key",
          "iso15118_2/private_keys/seccLeafPassword.txt")


class PkiError(BenchError):
    pass


def _script_dir() -> Path:
    import iso15118.shared

    return Path(iso15118.shared.__file__).parent / "pki"


def pki_complete(path: str | Path) -> bool:
    p = Path(path)
    return (p / MARKER).exists() and all((p / f).exists() for f in NEEDED)


def _generate(dest: Path, version: str, timeout: float) -> None:
    src = _script_dir()
    if shutil.which("openssl") is None or shutil.which("bash") is None:
        raise PkiError("openssl or bash not found", where="v2g_bench.ev.pki",
                       fix="install openssl (the stack's create_certs.sh calls it)")
    if not (src / "create_certs.sh").exists():
        raise PkiError(f"create_certs.sh not found in {src}", where="v2g_bench.ev.pki",
                       fix="reinstall iso15118 (the script ships in its wheel)")
    dest.mkdir(parents=True, exist_ok=True)
    # the script writes relative to its cwd and reads configs/ from there: run a copy in dest
    shutil.copy2(src / "create_certs.sh", dest / "create_certs.sh")
    shutil.copytree(src / "configs", dest / "configs", dirs_exist_ok=True)
    try:
        cp = subprocess.run(["bash", "create_certs.sh", "-v", version], cwd=dest, capture_output=True,
                            text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PkiError(f"create_certs.sh -v {version} did not finish within {timeout:g} s",
                       where="v2g_bench.ev.pki") from None
    if cp.returncode != 0:
        raise PkiError(f"create_certs.sh -v {version} failed ({cp.returncode}): {cp.stderr.strip()[-400:]}",
                       where="v2g_bench.ev.pki", fix="check openssl")


def ensure_pki(path: str | Path | None = None, *, timeout: float = 60.0, apply: bool = True) -> Path:
    """A complete test PKI in `path` (default: one temp dir per process), made once; returns its dir.

    With `apply`, points the stack's PKI_PATH there. Raises PkiError (never anything else) when the
    PKI cannot be made."""
    with _lock:
        key = str(path) if path else ""
        p = _made.get(key)
        if p is None:
            p = Path(path) if path else Path(tempfile.mkdtemp(prefix="v2g-bench-pki-"))
            if not path:
                atexit.register(shutil.rmtree, p, True)
            try:
                if not pki_complete(p):
                    _generate(p, "iso-2", timeout)
                    missing = [f for f in NEEDED if not (p / f).exists()]
                    if missing:
                        raise PkiError(f"create_certs.sh left out {', '.join(missing)}", where=str(p))
                    (p / MARKER).write_text("generated at test time by iso15118's create_certs.sh\n")
            except PkiError:
                raise
            except OSError as exc:
                raise PkiError(f"cannot write the PKI to {p}: {exc}", where="v2g_bench.ev.pki",
                               fix="give a writable pki_path") from None
            _made[key] = p
    if apply:
        from iso15118.shared.settings import shared_settings

        shared_settings["PKI_PATH"] = str(p) + os.sep
    return p
