#!/usr/bin/env bash
# Load test: builds the server and the load tool (the bench/ package) in release mode and runs
# chinwag-bench, which starts the real server on 127.0.0.1 with a temporary data directory and
# prints latency, throughput and memory. Both land in the workspace's one target directory
# (CARGO_TARGET_DIR when set), where chinwag-bench finds the server next to itself.
# Extra arguments go to chinwag-bench, e.g. `scripts/bench.sh --only rate --rate 8000` or
# `scripts/bench.sh --sync normal`; see `scripts/bench.sh --help`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p chinwag -p chinwag-bench
exec "${CARGO_TARGET_DIR:-target}/release/chinwag-bench" "$@"
