#!/usr/bin/env bash
# Cross-build the Rust unit tests for aarch64 and run them under qemu user-mode emulation, so the
# NEON kernel (rust/simd/aarch64.rs) is tested against the scalar reference on an x86-64 machine.
#
# Uses Debian packages only (bookworm): Debian's Rust toolchain `rustc-web` (1.96) with its aarch64
# standard library through multiarch (`libstd-rust-web-dev:arm64`), a cross linker and qemu.
# rustup's toolchains are not used: their aarch64 std would have to be downloaded. Also runs
# clippy for aarch64 (-D warnings) when Debian's `rust-web-clippy` is installed.
#
#   tools/cross_test_aarch64.sh              # all unit tests
#   tools/cross_test_aarch64.sh simd         # only tests whose name contains "simd"
#   INSTALL=1 tools/cross_test_aarch64.sh    # first install the packages (root, apt)
#
# Tests are compiled at opt-level 2 (debug assertions and overflow checks stay on): unoptimised
# code under emulation is ~10x slower.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${INSTALL:-0}" == 1 ]]; then
  dpkg --add-architecture arm64
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    rustc-web cargo-web rust-web-clippy libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    qemu-user >/dev/null
fi

for tool in /usr/bin/cargo /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run with INSTALL=1" >&2; exit 2; }
done
if [[ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ]]; then
  echo "Debian's aarch64 Rust std is missing: run with INSTALL=1" >&2
  exit 2
fi

# Debian's cargo and rustc, not the rustup proxies that come first on PATH.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR="$PWD/target/cross-aarch64"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CARGO_PROFILE_DEV_OPT_LEVEL=2 CARGO_PROFILE_DEV_DEBUG=0

echo "$(/usr/bin/rustc --version), target aarch64-unknown-linux-gnu, run by $(qemu-aarch64 --version | head -1)"
if [[ -x /usr/bin/cargo-clippy ]]; then  # Debian's rust-web-clippy; its driver matches Debian's rustc
  PATH="/usr/bin:$PATH" /usr/bin/cargo clippy --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
fi
# Tests are linked statically: under qemu 7.2 (bookworm) on this project's machines, a dynamically
# linked aarch64 program hangs in its first pthread_create (a static one does not), and the test
# harness runs each test on a thread.
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  /usr/bin/cargo test --target aarch64-unknown-linux-gnu --lib -- "$@"
