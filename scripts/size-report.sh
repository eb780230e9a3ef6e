#!/bin/sh
# What each part of the binary costs: the release build again with symbols
# kept (target/size/, same profile otherwise), its text+data symbols summed
# by owner -- our modules (cnibox::<layer>::<module>) and each crate -- and
# the stripped total. After LTO, inlined code is counted where it landed,
# so read the figures as proportions. Writes bench/size.md.
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=target/size \
    cargo build --quiet --release --target "$target" ${FEATURES:+--features "$FEATURES"}
bin=target/size/$target/release/cnibox
stripped=$(mktemp)
strip -o "$stripped" "$bin"
total=$(stat -c %s "$stripped")
rm -f "$stripped"
nm -C -S -t d --size-sort "$bin" | awk '
    $3 ~ /^[tTrRdDbB]$/ {
        size = $2 + 0; $1 = $2 = $3 = ""; name = substr($0, 4)
        sub(/^</, "", name); sub(/^_</, "", name)
        n = split(name, p, "::")
        if (p[1] == "cnibox" && n >= 3) key = p[1] "::" p[2] "::" p[3]
        else if (p[1] == "cnibox" && n >= 2) key = p[1] "::" p[2]
        else if (n >= 2 && p[1] ~ /^[a-z_][a-z0-9_]*$/) key = p[1]
        else key = "(other: libc, compiler, unnamed)"
        sum[key] += size; all += size
    }
    END { for (k in sum) printf "%d\t%s\n", sum[k], k; printf "%d\t%s\n", all, "TOTAL-SYMBOLS" }' \
    | sort -rn >target/size/by-owner.tsv
{
    printf '# What the binary is made of\n\n'
    printf '%s. Stripped static binary: %s bytes. Symbols summed by owner (unstripped build of the same profile; after LTO, inlined code counts where it landed).\n\n' \
        "$(date -u '+%Y-%m-%d')" "$total"
    printf '| owner | bytes | share |\n|---|---|---|\n'
    all=$(awk -F'\t' '$2 == "TOTAL-SYMBOLS" {print $1}' target/size/by-owner.tsv)
    awk -F'\t' -v all="$all" '$2 != "TOTAL-SYMBOLS" && $1 >= 4096 {printf "| %s | %d | %.1f%% |\n", $2, $1, 100 * $1 / all}' target/size/by-owner.tsv
    printf '| (owners under 4 KiB) | %d | |\n' "$(awk -F'\t' '$2 != "TOTAL-SYMBOLS" && $1 < 4096 {s += $1} END {print s + 0}' target/size/by-owner.tsv)"
} >bench/size.md
cat bench/size.md
