#!/usr/bin/env bash
# Build static Linux release binaries of `photomesh` for the devices.
#
#   scripts/dist.sh                  build both: x86_64 and aarch64 (Raspberry Pi 3/4/5 on a
#                                    64-bit OS, Android phones under Termux)
#   scripts/dist.sh aarch64          build one (x86_64 or aarch64)
#   scripts/dist.sh cargo-zigbuild test --target aarch64-unknown-linux-musl …
#                                    run cargo-zigbuild (its `test`, `zigbuild`, …) with the
#                                    pinned tools and the binaries' release settings, adding
#                                    the rustup target: CI builds the aarch64 unit tests so
#
# Output: $CARGO_TARGET_DIR/dist/photomesh-x86_64-linux and photomesh-aarch64-linux
# (default target/dist/). Each is a musl binary with no dynamic dependencies, so one file runs
# on any Linux of its CPU (Debian, Raspberry Pi OS, Android).
#
# The C parts (SQLite from rusqlite `bundled`, ring, aws-lc-sys) are cross-compiled by zig
# through cargo-zigbuild. What is missing is installed: the rustup targets, ziglang and
# cargo-zigbuild from PyPI (pinned below; into ~/.cache/photomesh/, nothing system-wide),
# and, as root, `file` and qemu-user from Debian. Each binary is checked: `file` must call
# it statically linked, and it must run `init` and `status` in a scratch home (the aarch64
# one under qemu-aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."

ZIGLANG_VERSION=0.15.2
CARGO_ZIGBUILD_VERSION=0.24.1

die() { echo "dist: error: $*" >&2; exit 1; }
say() { echo "dist: $*" >&2; }

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
cache=${XDG_CACHE_HOME:-${HOME:-$target_dir}/.cache}
tools=$cache/photomesh/dist-tools/zig-$ZIGLANG_VERSION-zigbuild-$CARGO_ZIGBUILD_VERSION

# Installs Debian packages (as root only): `apt_install COMMAND PACKAGE…` unless COMMAND exists.
apt_install() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "'$cmd' is missing: install $* (apt-get install $*)"
  say "installing $*"
  apt-get install -y -q "$@" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; } ||
    die "could not install $*"
}

# Puts zig (as `python3 -m ziglang`) and cargo-zigbuild on the path, installing them first.
setup_zig() {
  if [ ! -x "$tools/bin/cargo-zigbuild" ]; then
    apt_install python3 python3
    python3 -m pip --version >/dev/null 2>&1 || apt_install pip3 python3-pip
    say "installing ziglang $ZIGLANG_VERSION and cargo-zigbuild $CARGO_ZIGBUILD_VERSION into $tools"
    rm -rf "$tools.tmp"
    # --target: a private folder, so neither a system Python nor a virtualenv is touched.
    python3 -m pip install -q --disable-pip-version-check --no-warn-script-location \
      --target "$tools.tmp" "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
    rm -rf "$tools"
    mv "$tools.tmp" "$tools"
  fi
  export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$tools/bin:$PATH"
}

# Adds a rustup target unless it is installed.
add_target() {
  rustup target list --installed | grep -x "$1" >/dev/null && return 0
  say "rustup target add $1"
  rustup target add "$1"
}

# Builds, copies and checks one binary: `build_one ARCH`.
build_one() {
  local arch=$1 triple=$1-unknown-linux-musl
  local out=$target_dir/dist/photomesh-$arch-linux
  add_target "$triple"
  local start=$SECONDS
  cargo-zigbuild zigbuild --release --locked -p photomesh --bin photomesh --target "$triple"
  mkdir -p "$target_dir/dist"
  cp "$target_dir/$triple/release/photomesh" "$out"
  say "built $out in $((SECONDS - start)) s"
  check "$arch" "$out"
}

# Checks that a binary is static and runs: `check ARCH FILE`.
check() {
  local arch=$1 bin=$2 info run=()
  info=$(file -b "$bin")
  echo "$bin: $info"
  echo "$bin: $(du -h "$bin" | cut -f1) ($(stat -c %s "$bin") bytes)"
  case $info in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$bin is not statically linked" ;;
  esac
  if [ "$arch" != "$(uname -m)" ]; then
    apt_install "qemu-$arch" qemu-user
    run=("qemu-$arch")
  fi
  local home
  home=$(mktemp -d)
  "${run[@]}" "$bin" --version
  "${run[@]}" "$bin" --home "$home/node" init --name dist-check >/dev/null
  "${run[@]}" "$bin" --home "$home/node" status --json >/dev/null ||
    { rm -rf "$home"; die "$bin ran init but not status"; }
  rm -rf "$home"
  echo "$bin: runs (init and status${run:+ under ${run[0]}})"
}

# No debug info: the workspace's release profile keeps line tables (for benchmarks and
# `perf`), which make a binary six times larger (zig's linker then leaves no symbol table
# either; a panic message still names its file and line).
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo

case "${1:-}" in
  -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  cargo-zigbuild)
    shift
    setup_zig
    for ((i = 1; i < $#; i++)); do
      [ "${!i}" = --target ] && { j=$((i + 1)); add_target "${!j}"; }
    done
    exec cargo-zigbuild "$@"
    ;;
esac

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
for arch in "${arches[@]}"; do
  case $arch in
    x86_64 | aarch64) ;;
    *) die "unknown architecture '$arch' (x86_64 or aarch64; try --help)" ;;
  esac
done
apt_install file file
setup_zig
for arch in "${arches[@]}"; do
  build_one "$arch"
done
