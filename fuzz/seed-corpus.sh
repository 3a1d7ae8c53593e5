#!/bin/sh
# Seeds fuzz/corpus/<target>/ with the golden datagrams in
# crates/xorro-wire/tests/fixtures/<client>/*.bin, named <client>-<file>.bin.
# The corpus directories are git-ignored; running this again is harmless.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../crates/xorro-wire/tests/fixtures"

for target in decode roundtrip; do
    mkdir -p "$here/corpus/$target"
    count=0
    for file in "$fixtures"/*/*.bin; do
        client=$(basename "$(dirname "$file")")
        cp "$file" "$here/corpus/$target/$client-$(basename "$file")"
        count=$((count + 1))
    done
    echo "corpus/$target: $count fixtures"
done
