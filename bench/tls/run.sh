#!/usr/bin/env bash
# TLS benchmark, one command: builds sluiced in release and runs bench/tls/tlsbench.py (sluiced
# and HAProxy terminating TLS side by side; --help lists the options). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
for t in haproxy wrk openssl taskset; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 1; }; done
cargo build --release --quiet --bin sluiced
exec python3 bench/tls/tlsbench.py "$@"
