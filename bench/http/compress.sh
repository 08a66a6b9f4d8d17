#!/usr/bin/env bash
# Compression benchmark, one command: bench/http/run.sh's installs and build, then
# bench/http/compressbench.py, which starts sluiced, HAProxy and nginx pinned to CPU 0, each
# gzipping the same HTML page from one nginx origin, the origin and wrk pinned to CPU 1, prints a
# table and (when sluiced ran) appends it to bench/RESULTS.md. Arguments go to compressbench.py.
set -euo pipefail
exec env HTTPBENCH_SCRIPT=compressbench.py "$(dirname "$0")/run.sh" "$@"
