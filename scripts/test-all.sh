#!/usr/bin/env bash
# The whole wasmeow test suite: every acceptance test, the Baileys/libsignal interop and the soaks.
# This is the README's test command and what .ci/run calls. It installs what it needs on a fresh
# Debian machine (npm packages from the lockfile; the wasm toolchain for plugins) and talks only
# to loopback addresses. Plain `cargo test` stays the quick inner loop.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
stage() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

stage "npm packages for the interop peers (pinned, from package-lock.json)"
if [ ! -d tests/interop/node_modules/@whiskeysockets/baileys ] || [ tests/interop/package-lock.json -nt tests/interop/node_modules/.package-lock.json ]; then
  (cd tests/interop && npm ci --no-audit --no-fund)
fi

if [ -x scripts/plugin-toolchain.sh ]; then
  stage "wasm toolchain for plugins"
  scripts/plugin-toolchain.sh
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  stage "headless Chromium and chromedriver (Debian packages) for the admin page test"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

stage "build the Rust peers and the local server (wasmeow-sim) the Node harness drives"
cargo build --release -p wasmeow-interop-peer -p wasmeow-sim

stage "cargo test (workspace, including the #[ignore]d soaks and acceptance tests)"
cargo test --workspace -- --include-ignored

stage "interop: Baileys 7.0.0-rc14 and libsignal 6.0.0 as independent peers"
(cd tests/interop && node --test --test-concurrency=1)

stage "all suites passed in $(( $(date +%s) - start ))s"
