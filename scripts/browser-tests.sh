#!/usr/bin/env bash
# The demo app's browser tests: Chromium (headless) drives the app served by the real server
# binary, started by the tests on loopback with temporary data directories.
# Uses CHINWAG_BIN, or target/release/chinwag; it does not build the binary.
# Extra arguments go to `node --test` (e.g. `scripts/browser-tests.sh --test-name-pattern=photo`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${CHINWAG_BIN:-target/release/chinwag}"
if [[ ! -x "$bin" ]]; then
  echo "browser-tests: no server binary at $bin; build it (cargo build --release) or set CHINWAG_BIN" >&2
  exit 2
fi
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "browser-tests: no Chromium at $chromium; install it (Debian: apt-get install chromium) or set CHROMIUM_PATH" >&2
  exit 2
fi

cd tests/browser
npm ci --no-audit --no-fund --loglevel=error >/dev/null
CHINWAG_BIN="$(cd ../.. && realpath "$bin")" CHROMIUM_PATH="$chromium" \
  node --test --test-concurrency=1 --test-reporter=spec "$@" chat.test.mjs restart.test.mjs proxy.test.mjs
