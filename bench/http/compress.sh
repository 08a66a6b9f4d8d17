#!/usr/bin/env bash
# Compression benchmark, one command: installs what is missing (as root), builds sluiced in release,
# then runs bench/http/compressbench.py, which starts sluiced, HAProxy and nginx pinned to CPU 0,
# each gzipping the same HTML page from one nginx origin, the origin and wrk pinned to CPU 1, prints
# a table and (when sluiced ran) appends it to bench/RESULTS.md. Arguments go to compressbench.py.
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

python3 bench/http/compressbench.py "$@" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM
status=0
wait $pid || status=$?
exit $status
