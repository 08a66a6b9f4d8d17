#!/usr/bin/env bash
# HTTP benchmark, one command: installs what is missing (as root), builds sluiced in release, then
# runs bench/http/httpbench.py, which starts sluiced, HAProxy and nginx pinned to CPU 0 in front
# of one nginx origin, the origin and wrk pinned to CPU 1, measures keep-alive and
# one-request-per-connection load, prints a table and (when sluiced ran) appends it to
# bench/RESULTS.md. Arguments go to httpbench.py (--help lists them); bench/http/compress.sh runs
# compressbench.py the same way (HTTPBENCH_SCRIPT).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
. bench/install.sh

cargo build --release --quiet --bin sluiced --bin sluiced-loadgen

# The Python script kills its own children on exit; this trap covers the script itself being killed.
python3 "bench/http/${HTTPBENCH_SCRIPT:-httpbench.py}" "$@" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM
status=0
wait $pid || status=$?
exit $status
