#!/bin/sh
# Install what `make test-kernel` needs on a Debian 12 machine (root, no
# stdin): qemu-system-x86 from bookworm-backports (the machine's qemu-utils
# may come from there: a plain install of bookworm's 7.2 would remove it, so
# --no-remove), busybox-static, kmod (depmod, modprobe), xz-utils, and
# Debian's stock kernel unpacked (not installed: no initramfs-tools run)
# into $KERNEL_DIR, with its module index made.
set -eu
KERNEL_DIR=${KERNEL_DIR:-/var/cache/cnibox-kernel}
export DEBIAN_FRONTEND=noninteractive

have() { command -v "$1" >/dev/null 2>&1; }
need=""
have qemu-system-x86_64 || need="$need qemu-system-x86"
have busybox || need="$need busybox-static"
have modprobe || need="$need kmod"
have depmod || need="$need kmod"
have xz || need="$need xz-utils"
if [ -n "$need" ]; then
    # The same mirror the machine already uses, suite bookworm-backports.
    uri=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | awk '{print $2}' | head -n1)
    uri=${uri:-http://deb.debian.org/debian}
    list=/etc/apt/sources.list.d/cnibox-backports.list
    echo "deb $uri bookworm-backports main" > "$list"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-remove --no-install-recommends \
        -t bookworm-backports $need
    rm -f "$list"
    apt-get update -qq
fi

# Debian's stock kernel, unpacked: linux-image-amd64 is a metapackage naming
# linux-image-<version>-amd64.
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ] || ! [ -f "$KERNEL_DIR/$pkg/.done" ]; then
    apt-get update -qq
    pkg=$(kernel_pkg)
    [ -n "$pkg" ] || { echo "kernel-lane-deps: no linux-image-amd64 in apt's lists" >&2; exit 1; }
fi
if ! [ -f "$KERNEL_DIR/$pkg/.done" ]; then
    rm -rf "${KERNEL_DIR:?}/$pkg"
    mkdir -p "$KERNEL_DIR/$pkg"
    # (downloaded as _apt: into a directory it may write)
    dl=$(mktemp -d)
    chmod 777 "$dl"
    (cd "$dl" && apt-get download -qq "$pkg")
    dpkg -x "$dl/${pkg}"_*.deb "$KERNEL_DIR/$pkg"
    rm -rf "$dl"
    # The package ships no module index (its postinst runs depmod).
    depmod -b "$KERNEL_DIR/$pkg" "$(ls "$KERNEL_DIR/$pkg/lib/modules")"
    touch "$KERNEL_DIR/$pkg/.done"
fi
ln -sfn "$pkg" "$KERNEL_DIR/current"
echo "kernel: $KERNEL_DIR/current -> $pkg"
