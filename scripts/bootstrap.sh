#!/usr/bin/env bash
# Idempotent set-up for `make run` / `make test`: venv, pinned deps, Java, Allure CLI.
# A second run only compares stamps and takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMP=$VENV/.v2g-bench-stamp
say() { echo "[bootstrap] $*" >&2; }

pick_python() {
  # 3.12 first (3.11 loses task cancellations inside ocpp's call()), then the newest >= 3.11.
  local cands=(python3.12 python3.13 python3.11 python3)
  for d in "$HOME"/.pyenv/versions/3.12.* "$HOME"/.pyenv/versions/3.13.* "$HOME"/.pyenv/versions/3.11.*; do
    [ -x "$d/bin/python3" ] && cands+=("$d/bin/python3")
  done
  local best=""
  for c in "${cands[@]}"; do
    local p; p=$(command -v "$c" 2>/dev/null || true); [ -n "$p" ] || continue
    local v; v=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
    case "$v" in 3.12) echo "$p"; return 0;; 3.13|3.11) [ -z "$best" ] && best=$p;; esac
  done
  [ -n "$best" ] && { echo "$best"; return 0; }
  return 1
}

# --- Python venv + pinned dependencies ------------------------------------------------------
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    PY=$(pick_python) || { say "no Python >= 3.11 found: install python3.12 (apt-get install python3.12-venv, or pyenv install 3.12)"; exit 1; }
    say "creating .venv with $PY"
    "$PY" -m venv "$VENV"
  fi
  say "installing pinned dependencies (requirements.lock)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements.lock -e . 2>&1 \
    | grep -vE "^WARNING: Location|is ignored" || true
  # pyslac (the virtual lab's EVSE-side SLAC) declares environs<10, iso15118 needs environs>=14; it runs
  # with the newer one (tests/unit/physical), so it is installed without its declared dependencies
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -c requirements.lock pyslac 2>&1 \
    | grep -vE "^WARNING: Location|is ignored" || true
  "$VENV/bin/python" -c 'import v2g_bench, iso15118, ocpp, highspy' \
    || { say "dependency install failed: see pip output above"; exit 1; }
  echo "$want" > "$STAMP"
fi

# --- Java for the iso15118 EXI codec ---------------------------------------------------------
if ! command -v java >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing a headless JRE (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null
  else
    say "Java is missing: install a JRE >= 11 (e.g. 'sudo apt-get install default-jre-headless'); the iso15118 EXI codec needs it"
  fi
fi

# --- Pango for WeasyPrint (the test report's PDF) -------------------------------------------
if ! "$VENV/bin/python" -c 'import weasyprint' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Pango for the PDF test report (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null || true
  else
    say "WeasyPrint cannot load Pango: install libpango-1.0-0 libpangoft2-1.0-0 for the PDF test report"
  fi
fi

# --- Allure report CLI, project-local (npm) --------------------------------------------------
ALLURE=$ROOT/.tools/allure/node_modules/.bin/allure
if [ ! -x "$ALLURE" ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing the Allure CLI into .tools/allure (npm)"
    npm install --silent --no-audit --no-fund --prefix "$ROOT/.tools/allure" allure-commandline@2.46.1 >/dev/null 2>&1 \
      || say "npm could not install allure-commandline: HTML reports are skipped ('v2g-bench doctor' tells more)"
  else
    say "npm is missing: install Node.js/npm to get HTML reports (results are still written)"
  fi
fi
exit 0
