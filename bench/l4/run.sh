#!/usr/bin/env bash
# L4 benchmark, one command: installs what is missing (as root), builds sluiced and the load tool in
# release, then runs bench/l4/l4bench.py, which starts sluiced, HAProxy and nginx pinned to CPU 0,
# the origins and the load pinned to CPU 1, measures, prints a table and (when sluiced ran) appends
# it to bench/RESULTS.md. Arguments go to l4bench.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
if ! command -v nginx >/dev/null; then
  need+=(nginx-light libnginx-mod-stream)
elif nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' && ! ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1; then
  need+=(libnginx-mod-stream)
fi
. bench/install.sh

cargo build --release --quiet --bin sluiced --bin sluiced-loadgen

# The Python script kills its own children on exit; this trap covers the script itself being killed.
python3 bench/l4/l4bench.py "$@" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' INT TERM
status=0
wait $pid || status=$?
exit $status
