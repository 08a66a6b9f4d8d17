#!/usr/bin/env bash
# Zero-copy body sends against plain ones, one command: installs what is missing (as root),
# builds sluiced in release, then runs bench/zerocopy/zcbench.py (--help lists the options). See
# bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
. bench/install.sh

cargo build --release --quiet --bin sluiced
exec python3 bench/zerocopy/zcbench.py "$@"
