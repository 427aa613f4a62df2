#!/usr/bin/env bash
# Set up (idempotent) and launch pose-viewer on the embedded defaults. Extra arguments are passed on.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
export ANNY_CACHE_DIR="${POSE_VIEWER_CACHE:-$ROOT/.cache}/anny"
exec "$ROOT/.venv/bin/pose-viewer" "$@"
