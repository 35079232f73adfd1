#!/usr/bin/env bash
# The README's first command: build photomesh in release mode and run `photomesh demo` —
# three devices (phone, laptop, NAS) on this machine, paired by QR code, replicating the
# phone's new photos. Arguments are passed on (e.g. --keep, --photos 100).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -p photomesh -- demo "$@"
