#!/bin/sh
# Writes the seeds for the `record` target into DIR: each record of tests/corpus in each
# of the four forms the target's first byte selects (text, compressed text; the binary
# forms start from the same text and are mostly refused, which the fuzzer learns from).
set -eu
out=${1:?usage: seeds.sh DIR}
here=$(dirname "$0")
for f in "$here"/../tests/corpus/record-*.txt; do
    name=$(basename "$f" .txt)
    { printf '\000'; cat "$f"; } > "$out/$name.txt"
    { printf '\001'; zstd -q -c --check "$f"; } > "$out/$name.txt.zst"
done
