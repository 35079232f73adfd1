#!/usr/bin/env bash
# Builds the Debian package of photomesh for this machine's architecture into
# target/debian/: the release binary, the systemd unit, the system user and its home (see
# [package.metadata.deb] in node/Cargo.toml). Needs cargo-deb:
#   cargo install --locked cargo-deb --version 3.8.0
# Then check it with `dpkg-deb -I` and `dpkg-deb -c`, and install it with
# `sudo apt install ./target/debian/photomesh_*.deb` (README.md, "Running as a service").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "cargo-deb is missing: cargo install --locked cargo-deb --version 3.8.0" >&2
  exit 2
fi
# Stripped: a 15 MB binary instead of 87 MB with line tables (for a Pi's SD card).
cargo deb --locked --strip -p photomesh "$@"
