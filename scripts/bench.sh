#!/usr/bin/env bash
# Load test: builds both binaries in release mode and runs chinwag-bench, which starts the real
# server on 127.0.0.1 with a temporary data directory and prints latency, throughput and memory.
# Extra arguments go to chinwag-bench, e.g. `scripts/bench.sh --only rate --rate 8000` or
# `scripts/bench.sh --sync normal`; see `scripts/bench.sh --help`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --bins
exec target/release/chinwag-bench "$@"
