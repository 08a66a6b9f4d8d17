#!/usr/bin/env bash
# Cost of stick-table tracking, in instructions (callgrind), one command: builds sluiced in release
# and runs bench/stick/stickbench.py, which counts the instructions a keep-alive HTTP request
# costs the proxy without tracking, with `track-sc0 src` + a rate check, and with a per-request
# key in a large table. Needs valgrind (installed with apt-get when run as root). Arguments go
# to stickbench.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
command -v valgrind >/dev/null || need+=(valgrind)
# shellcheck source=bench/install.sh
source bench/install.sh
cargo build --release --quiet --bin sluiced
exec python3 bench/stick/stickbench.py "$@"
