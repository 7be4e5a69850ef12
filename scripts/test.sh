#!/usr/bin/env bash
# The project's test command: unit tests, the integration tests under tests/ (which start the
# real server on a temporary data directory) and the test targets of every workspace package
# (the server's and the load tool's, bench/); then the JS client's tests (tests/client, with
# Node's own test runner, against the server binary cargo just built) and the demo app's tests
# in headless Chromium (tests/browser). The JS parts need Node 20 or newer, the browser tests
# Chromium too: where one is missing it is skipped with a note, except in CI, where it fails.
# Extra arguments go to `cargo test` and run the Rust tests alone, e.g. `scripts/test.sh --locked`
# or `scripts/test.sh -- some_test_name`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --workspace --all-targets "$@"
(($# == 0)) || exit 0

bin="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/chinwag"
missing() {
    if [[ -n ${CI:-} ]]; then
        echo "test: $1 is missing (CI needs it)" >&2
        exit 1
    fi
    echo "test: $1 is missing: skipping $2" >&2
}

if ! command -v node >/dev/null 2>&1; then
    missing "node (20 or newer)" "the JS client's and the browser tests"
    exit 0
fi
echo "==> the JS client's tests (tests/client)"
CHINWAG_BIN="$bin" node --test --test-concurrency=1 tests/client/

if [[ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]]; then
    missing "Chromium (${CHROMIUM_PATH:-/usr/bin/chromium})" "the browser tests"
    exit 0
fi
echo "==> the demo app in Chromium (tests/browser)"
CHINWAG_BIN="$bin" scripts/browser-tests.sh
