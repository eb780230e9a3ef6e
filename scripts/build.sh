#!/bin/sh
# Build the static release binary: musl first, glibc + crt-static as the
# fallback. Always with an explicit --target (without it, RUSTFLAGS would
# reach the proc-macros and break the build). Fails unless ldd says the
# result is statically linked. The binary is copied to target/static/cnibox.
# QUIET=1: no progress output, only errors and warnings (for `make demo`).
set -eu
cd "$(dirname "$0")/.."

build() {
    cargo build ${QUIET:+--quiet} --release --target "$1"
}

target=x86_64-unknown-linux-musl
# ring (rustls's crypto, feature `tls`) compiles a little C: without a musl
# cross compiler, the host gcc does (ring's C needs no libc headers).
if [ -z "${CC_x86_64_unknown_linux_musl:-}" ]; then
    CC_x86_64_unknown_linux_musl=$(command -v x86_64-linux-musl-gcc || command -v musl-gcc || echo gcc)
    export CC_x86_64_unknown_linux_musl
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup ${QUIET:+--quiet} target add "$target" >&2 || true
fi
if rustup target list --installed 2>/dev/null | grep -qx "$target" && build "$target"; then
    :
else
    echo "build.sh: musl build unavailable, falling back to glibc + crt-static" >&2
    target=x86_64-unknown-linux-gnu
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" build "$target"
fi

bin="target/$target/release/cnibox"
if ! ldd "$bin" 2>&1 | grep -q "statically linked"; then
    echo "build.sh: $bin is not statically linked:" >&2
    ldd "$bin" >&2 || true
    exit 1
fi
mkdir -p target/static
cp "$bin" target/static/cnibox.tmp
mv target/static/cnibox.tmp target/static/cnibox
[ -n "${QUIET:-}" ] || echo "target/static/cnibox: $(stat -c %s target/static/cnibox) bytes, $target, statically linked" >&2
