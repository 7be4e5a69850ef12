#!/usr/bin/env bash
# The project's test command: unit tests, the integration tests under tests/ (which start the
# real server on a temporary data directory) and the test targets of every workspace package
# (the server's and the load tool's, bench/).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh --locked` or
# `scripts/test.sh -- some_test_name`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --workspace --all-targets "$@"
