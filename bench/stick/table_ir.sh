#!/usr/bin/env bash
# Instructions per track in the table microbenchmark (benches/stick_table.rs): builds it, runs its
# `--probe` mode under callgrind collecting only inside the `probe_*` functions, and prints each
# function's instructions divided by its number of tracks (100,000 tracks in the tables of 1,000
# and of 1,000,000 entries, 10,000 insertions of new keys into the table of 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --bench stick_table --no-run --quiet 2>/dev/null || cargo bench --bench stick_table --no-run
bin=$(ls -t target/release/deps/stick_table-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)/callgrind.out
valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*probe_*' --callgrind-out-file="$out" "$bin" --probe >/dev/null 2>&1
callgrind_annotate --inclusive=yes --auto=no "$out" | awk '
  /probe_small /   { gsub(",", "", $1); printf "1,000 entries, 1 thread: %.0f instructions per track\n", $1 / 100000 }
  /probe_million / { gsub(",", "", $1); printf "1,000,000 entries, random keys: %.0f instructions per track\n", $1 / 100000 }
  /probe_insert /  { gsub(",", "", $1); printf "insertion of a new key into 1,000,000 entries: %.0f instructions\n", $1 / 10000 }'
