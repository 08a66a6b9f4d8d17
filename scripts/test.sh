#!/usr/bin/env bash
# Runs the whole test suite. On a fresh machine (as root) it first installs the real servers the
# integration tests put behind sluiced or health-check (PostgreSQL, Redis, MariaDB) and the operators'
# tools the stats socket is tested with (socat, hatop in tmux, promtool).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v mariadbd || command -v /usr/sbin/mariadbd; } >/dev/null 2>&1 || need+=(mariadb-server)
command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The operators' tools the stats socket is tested with.
for t in socat hatop tmux promtool; do
  command -v $t >/dev/null 2>&1 || need+=("$([ $t = promtool ] && echo prometheus || echo $t)")
done
# The socket-buffer and source-address tests read the daemon's sockets with ss.
command -v ss >/dev/null 2>&1 || need+=(iproute2)
# The TLS tests make their certificates with openssl and use curl and openssl s_client as clients.
for t in openssl curl; do
  command -v $t >/dev/null 2>&1 || need+=("$t")
done
# The benchmark harnesses' own tests are Python.
command -v python3 >/dev/null 2>&1 || need+=(python3)
# ... and testssl checks the default protocols and ciphers.
command -v testssl >/dev/null 2>&1 || need+=(testssl.sh)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: please install ${need[*]} (the database and stats tests need them)" >&2
    exit 1
  fi
fi

cargo test --locked "$@"

# The benchmark harnesses' placement logic (which measurements count as near, far or moved, and
# the bars per placement) and their machine line.
if [ $# -eq 0 ]; then
  python3 bench/l4/test_placement.py
fi

# The integration suite again on the epoll backend: the run above used the default, `auto`, which
# is io_uring wherever the kernel allows it (tests/io_backend.rs checks which one ran, and the
# fallback with io_uring refused by seccomp). Skipped when the caller picked tests or a backend.
if [ $# -eq 0 ] && [ -z "${SLUICED_IO_BACKEND:-}" ]; then
  SLUICED_IO_BACKEND=epoll cargo test --locked --test '*'
fi
