#!/usr/bin/env bash
# The project's one test command (README "Testing"; .ci/run calls exactly this).
# Installs the oracles (apt, pip, Go build), then runs fmt, clippy, every test
# (including those that compare with Go bbolt and real etcd), and builds and
# smoke-runs the fuzz targets. Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "install oracles (etcd 3.4.23, 3.5.1, 3.5.35, 3.6.16, 3.7.3; Go bbolt 1.3.6, 1.4.3, 1.5.0; kube-apiserver 1.37.2, k8sdriver, kmsplugin)"
tools/install-oracles.sh

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  step "install rustfmt and clippy"
  rustup component add rustfmt clippy
fi

step "layout: crate layers, no module circles, no file over 800 lines"
python3 tools/check-layout.py

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked --no-fail-fast

if [ -x tools/fuzz-build.sh ]; then
  step "fuzz targets: build and smoke run"
  tools/fuzz-build.sh "${FUZZ_SECONDS:-15}"
fi

step "all tests passed"
