#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh Debian machine with Python 3.11:
#   apt packages for the GUI (needs root or sudo; skipped when present), the .venv with pinned
#   packages, the MediaPipe hand-landmarker bundle (from the official 0.10.21 wheel), the Anny cache.
# Re-running is quick: every step checks whether its result is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${POSE_VIEWER_CACHE:-$ROOT/.cache}"
PY="${PYTHON:-python3.11}"
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. apt packages needed by the Qt/VTK window under Xvfb (tests) and on a bare desktop.
APT_PKGS="xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 libglx-mesa0 libegl-mesa0"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing apt packages (needs root/sudo):$missing"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# 2. Virtual environment with the pinned packages (re-installed only when pyproject.toml changes).
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"; "$PY" -m venv .venv
fi
STAMP=.venv/.pose-viewer-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  log "installing packages into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$STAMP"
fi

# 3. MediaPipe HandLandmarker bundle, assembled from the official wheel (DESIGN §12).
mkdir -p "$CACHE"
TASK="$CACHE/mediapipe/hand_landmarker.task"
if [ ! -s "$TASK" ]; then
  log "assembling the MediaPipe hand-landmarker bundle from mediapipe==0.10.21"
  .venv/bin/python scripts/build_mediapipe_task.py --out "$TASK"
fi

# 4. Anny hand-model cache (first build ~70 s, later constructions < 1 s).
export ANNY_CACHE_DIR="$CACHE/anny"
if [ ! -f "$CACHE/anny/.pose-viewer-ready" ]; then
  log "building the Anny hand-model cache (one time, about a minute)"
  .venv/bin/python -c "from core.hand.anny_hand import AnnyHand; AnnyHand()"
  touch "$CACHE/anny/.pose-viewer-ready"
fi
