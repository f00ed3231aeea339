"""`python -m benchmarks [name ...]` (or `make bench`): run the benchmarks one after the other, each
in its own process, and print their figures. Names: the modules in this folder."""
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = [m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_")]
    wanted = argv or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], timeout=900).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"=== {name}: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.monotonic() - t0:.1f} s ===", flush=True)
        if rc != 0:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
