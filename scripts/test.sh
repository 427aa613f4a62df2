#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite; GUI tests run in a real window under Xvfb
# (pytest-xvfb starts it). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
export ANNY_CACHE_DIR="${POSE_VIEWER_CACHE:-$ROOT/.cache}/anny"
exec .venv/bin/python -m pytest "$@"
