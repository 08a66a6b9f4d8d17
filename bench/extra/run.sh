#!/usr/bin/env bash
# Idle-connection memory and cold start, one command: installs what is missing (as root), builds
# sluiced in release, then runs bench/extra/extrabench.py (sluiced, HAProxy and nginx in the same
# run; --help lists the options). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
. bench/install.sh

cargo build --release --quiet --bin sluiced
exec python3 bench/extra/extrabench.py "$@"
