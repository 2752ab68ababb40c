#!/usr/bin/env bash
# Reader emulator setup and launcher.
#   bench/reader/setup.sh install            create bench/.venv (if absent) and install pinned deps
#   bench/reader/setup.sh serve [args...]    install if needed, then exec the server (args: see --help)
#   bench/reader/setup.sh test [pytest args] install if needed, then run the tests
# Idempotent: a venv whose installed requirements match requirements.txt is left as it is.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
VENV="${READER_VENV:-$BENCH/.venv}"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.reader-requirements.sha256"
PY="${PYTHON:-}"

log() { echo "[reader-setup] $*" >&2; }

pick_python() {
  if [[ -n "$PY" ]]; then return; fi
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; return; fi
  done
  log "no python3 found"; exit 1
}

apt_install() {  # best effort: only as root with apt-get
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install $*"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null 2>&1 \
      || log "apt-get install $* failed"
  else
    log "missing system packages ($*); install them with apt-get as root"
  fi
}

install() {
  pick_python
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
  fi
  local want; want="$(sha256sum "$REQ" | cut -d' ' -f1)"
  if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
    log "installing $REQ"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$want" > "$STAMP"
  fi
  # opencv-python (a rapidocr dependency) links libGL and glib from the system
  if ! "$VENV/bin/python" -c "import cv2" >/dev/null 2>&1; then
    apt_install libgl1 libglib2.0-0
    "$VENV/bin/python" -c "import cv2" >/dev/null || { log "cv2 does not import"; exit 1; }
  fi
  # the second engine, --engine tesseract (optional)
  if ! command -v tesseract >/dev/null 2>&1; then
    apt_install tesseract-ocr
  fi
  if [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    apt_install fonts-dejavu-core   # the tests draw with it
  fi
}

cmd="${1:-install}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  install) install; log "ok: $VENV" ;;
  serve)   install; exec "$VENV/bin/python" "$HERE/server.py" "$@" ;;
  test)    install; cd "$HERE" && exec "$VENV/bin/python" -m pytest -q "$HERE" "$@" ;;
  *) echo "usage: $0 install | serve [--port N --engine rapidocr|tesseract --max-side R ...] | test [pytest args]" >&2; exit 2 ;;
esac
