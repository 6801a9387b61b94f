#!/usr/bin/env bash
# Set up vmlab on a Debian/Ubuntu machine: fuse3, a virtual environment in
# .venv, and the package in it. `--dev` adds what the test suite needs.
# Safe to run again; it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[plot]" dev=""   # editable either way: the clone is the install
[ "${1:-}" = "--dev" ] && extras="[plot,test]" dev=1

say() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root for: $*  (run this script as root, or install it first)"; exit 1
  fi
}

apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v fusermount3 >/dev/null || ! ldconfig -p | grep -q 'libfuse3\.so\.3 '; then
  say "installing fuse3 (fusermount3 and libfuse3)"
  apt_install fuse3
fi
if ! command -v cc >/dev/null || [ ! -e /usr/include/linux/userfaultfd.h ]; then
  say "installing gcc (it builds the real machine's compiled fault path)"
  apt_install gcc libc6-dev
fi
if [ -n "$dev" ] && ! command -v valgrind >/dev/null; then
  say "installing valgrind (the tests replay real programs' memory traces)"
  apt_install valgrind
fi
[ -e /dev/fuse ] || { say "/dev/fuse is missing: load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse"; exit 1; }

py=""
for cand in python3 python3.13 python3.12 python3.11; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    py=$cand; break
  fi
done
if [ -z "$py" ]; then
  say "installing python3 (3.11 or newer is needed)"
  apt_install python3 python3-venv
  py=python3
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$py" -m venv .venv 2>/dev/null; then
    say "installing python3-venv"
    apt_install python3-venv
    rm -rf .venv && "$py" -m venv .venv
  fi
fi
say "installing vmlab$extras into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras" 2>&1 \
  | grep -v "^WARNING: Location 'file:" >&2 || true
.venv/bin/vmlab --version >/dev/null || { say "vmlab did not install"; exit 1; }
why=$(.venv/bin/python -c 'from vmlab.real.fastpath import why_not; print(why_not() or "")')
[ -z "$why" ] || say "note: $why"
say "ready: .venv/bin/vmlab"
