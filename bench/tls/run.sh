#!/usr/bin/env bash
# TLS benchmark, one command: builds sluiced in release and runs bench/tls/tlsbench.py (sluiced
# and HAProxy terminating TLS side by side; --help lists the options). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v taskset >/dev/null || need+=(util-linux)
. bench/install.sh
cargo build --release --quiet --bin sluiced
exec python3 bench/tls/tlsbench.py "$@"
