#!/usr/bin/env bash
# Cost of stick-table tracking, in instructions (callgrind), one command: builds sluiced in release
# and runs bench/stick/stickbench.py, which counts the instructions a keep-alive HTTP request
# costs the proxy without tracking, with `track-sc0 src` + a rate check, and with a per-request
# key in a large table. Needs valgrind (installed with apt-get when run as root). Arguments go
# to stickbench.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: valgrind (run as root to install it with apt-get)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
cargo build --release --quiet --bin sluiced
exec python3 bench/stick/stickbench.py "$@"
