#!/usr/bin/env bash
# Build vmlab's container images and run the demo and the test suite inside,
# with podman or docker, whichever can run here. Where none can, say so and
# exit 0. BASE=IMAGE builds from another Debian bookworm image with python3
# (and its venv module) instead of python:3.11-slim-bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'container-test: %s\n' "$*" >&2; }

engine=""
for candidate in podman docker; do
  if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then
    engine=$candidate
    break
  fi
done
if [ -z "$engine" ]; then
  say "no container engine can run here (podman, or docker with its daemon): nothing tested"
  exit 0
fi
if [ ! -e /dev/fuse ]; then
  say "/dev/fuse is missing on this host: load the fuse module (modprobe fuse); nothing tested"
  exit 0
fi

base=${BASE:-python:3.11-slim-bookworm}
if ! probe=$("$engine" run --rm "$base" true 2>&1); then
  say "$engine is here but cannot start a container from $base: $(printf '%s' "$probe" | tail -n 1); nothing tested"
  exit 0
fi

build=("$engine" build)
[ -n "${BASE:-}" ] && build+=(--build-arg "BASE=$BASE")
run=("$engine" run --rm --init --device /dev/fuse --cap-add SYS_ADMIN
     --security-opt apparmor=unconfined)
# Real faults (vmlab real) need userfaultfd, which the engines' seccomp
# profiles refuse as a system call; the device (Linux 6.1+) is allowed.
if [ -e /dev/userfaultfd ]; then
  run+=(--device /dev/userfaultfd)
else
  say "no /dev/userfaultfd on this host (Linux 6.1+): the real-fault parts will say they are skipped"
fi

say "building the demo image with $engine"
"${build[@]}" -t vmlab .
say "building the lab image"
"${build[@]}" --target lab -t vmlab-lab .
for image in vmlab vmlab-lab; do
  say "$image: $("$engine" image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
done
say "vmlab demo"
"${run[@]}" vmlab
say "vmlab run thrash --frames 6"
"${run[@]}" vmlab run thrash --frames 6
say "the test suite"
"${run[@]}" vmlab-lab
say "all passed with $engine"
