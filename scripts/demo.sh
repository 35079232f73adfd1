#!/usr/bin/env bash
# The main job, end to end, on one device: build photomesh, generate a sample photo folder,
# then init → folder add → scan → status → verify → restore, and check the restored copy is
# byte-identical to the original. Everything happens in a temporary folder that is removed
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p photomesh -p photomesh-tests --bins
bin="$PWD/target/release/photomesh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PHOTOMESH_HOME="$work/home"

step() { printf '\n$ %s\n' "$*"; "$@"; }

target/release/sample-photos "$work/photos" 24
step "$bin" init --name laptop
step "$bin" folder add "$work/photos" --label camera
step "$bin" scan
step "$bin" scan
step "$bin" status
step "$bin" photos
step "$bin" verify
step "$bin" restore --to "$work/restored"
diff -r "$work/photos" "$work/restored/camera"
echo
echo "The restored copy is byte-identical to the original folder."
