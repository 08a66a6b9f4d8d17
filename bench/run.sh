#!/usr/bin/env bash
# The whole benchmark harness, one command: HTTP (keep-alive and one request per connection),
# L4 (throughput and connection churn), idle-connection memory and cold start; sluiced on each I/O
# backend, HAProxy and nginx in the same runs, each proxy with one worker pinned to CPU 0, the
# load and the origins pinned to CPU 1, loopback only. Each part appends its report to
# bench/RESULTS.md. Run as root on an otherwise idle machine (about 20 minutes on 2 CPUs);
# arguments go to every part (e.g. --repeats 5). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bench/http/run.sh --repeats 3 "$@"
bench/l4/run.sh --repeats 3 "$@"
bench/extra/run.sh --record
