#!/bin/sh
# `make test-kernel`: the kernel integration tests on Debian's stock kernel
# (linux-image-amd64, 6.1 on bookworm) in qemu (TCG: no usable KVM here).
#
# The test binaries are built here; the guest boots the uncompressed vmlinux
# with a small busybox initramfs that loads virtio + 9p, mounts this
# machine's root read-only over 9p (as virtme-ng does: the whole userland,
# ip/bridge/nft, the Go plugins and the test binaries at their own paths),
# puts tmpfs on /run, /tmp and $CARGO_TARGET_TMPDIR, and runs every test
# binary with kernel module autoloading from the unpacked kernel's module
# tree (modules.dep, modules.softdep, modules.alias via kmod's modprobe).
# Results come back over a second, writable 9p share: the guest's output,
# its skip logs and its exit status (qemu's own status says nothing).
#
# The lane fails when a test fails or when a test still skips for a kernel
# feature: running those is its point.
#
#   LANE_TESTS="bridge masq"   only these test binaries (default: all but
#                              LANE_EXCLUDE's)
#   LANE_EXCLUDE="..."         binaries not run (default: the suites that
#                              never reach the kernel, and bad_input)
#   LANE_FILTER=vlan           a libtest name filter for each binary
#   LANE_THREADS=2             --test-threads in the guest
#   LANE_TIMEOUT=1800          seconds before the VM is killed
#   KERNEL_DIR=...             where scripts/kernel-lane-deps.sh unpacked it
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
KERNEL_DIR=${KERNEL_DIR:-/var/cache/cnibox-kernel}
kdir=$(readlink -f "$KERNEL_DIR/current" 2>/dev/null || true)
if [ -z "$kdir" ] || ! [ -d "$kdir/lib/modules" ]; then
    echo "test-kernel: no unpacked kernel in $KERNEL_DIR/current: run scripts/kernel-lane-deps.sh as root" >&2
    exit 1
fi
kver=$(ls "$kdir/lib/modules" | head -n1)
for tool in qemu-system-x86_64 modprobe depmod xz busybox; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "test-kernel: $tool is missing: run scripts/kernel-lane-deps.sh as root" >&2
        exit 1
    }
done
lane=$root/target/kernel-lane
share=$lane/share
mkdir -p "$lane" "$root/target/tmp"
rm -rf "$share"
mkdir -p "$share/skips"

# The module index (the package ships none: depmod runs in its postinst).
[ -s "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver"

# The uncompressed kernel: qemu boots the ELF directly (PVH entry), 3x
# faster under TCG than the bzImage's BIOS + xz path. The payload is the xz
# stream inside vmlinuz (the kernel tree's extract-vmlinux method).
vmlinux=$kdir/vmlinux
if ! [ -s "$vmlinux" ]; then
    img=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
    off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | head -n1 | cut -d: -f1)
    tail -c +$((off + 1)) "$img" | xz -dcq > "$vmlinux.tmp" 2>/dev/null || true
    [ "$(head -c 4 "$vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || {
        echo "test-kernel: could not extract vmlinux from $img" >&2
        exit 1
    }
    mv "$vmlinux.tmp" "$vmlinux"
fi

# The test binaries, built here (the same profile as `make test`).
start=$(date +%s)
cargo test --no-run --message-format=json > "$lane/build.json"
tests=$(grep '"reason":"compiler-artifact"' "$lane/build.json" |
    grep '"kind":\["test"\]' | grep '"executable":"' |
    sed 's/.*"name":"\([^"]*\)","src_path".*"executable":"\([^"]*\)".*/\1=\2/')
# By default not the suites that never reach the kernel (files, protocol)
# nor bad_input (hostile configs, refused before any kernel change; the
# slowest suite under TCG), nor faults (hundreds of kill-and-clean-up
# trials: half an hour under TCG, and no kernel feature this VM lacks) nor
# podman (needs cgroups and a container runtime, not a kernel feature), nor
# the suites of servers that use no kernel feature this VM lacks (daemon,
# dhcp, doctor, etcd): LANE_EXCLUDE= runs every binary.
if [ -n "${LANE_TESTS:-}" ]; then
    picked=""
    for want in $LANE_TESTS; do
        hit=$(printf '%s\n' $tests | grep "^$want=" || true)
        [ -n "$hit" ] || { echo "test-kernel: no test binary $want" >&2; exit 1; }
        picked="$picked $hit"
    done
    tests=$picked
else
    for ex in ${LANE_EXCLUDE-applets bad_input daemon dhcp doctor etcd faults host_local host_local_interop podman static_ipam tool_libcni}; do
        tests=$(printf '%s\n' $tests | grep -v "^$ex=" || true)
    done
fi

# The initramfs: busybox and the modules that reach the 9p root.
initrd=$lane/initrd-$kver.cpio.gz
if ! [ -s "$initrd" ] || [ "$initrd" -ot scripts/kernel-lane-init.sh ]; then
    ird=$lane/initrd
    rm -rf "$ird"
    mkdir -p "$ird/bin" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot" "$ird/mods"
    cp "$(command -v busybox)" "$ird/bin/busybox"
    cp scripts/kernel-lane-init.sh "$ird/init"
    chmod +x "$ird/init"
    for m in virtio_pci 9pnet_virtio 9p; do
        modprobe -d "$kdir" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | while read -r ko; do
        [ -e "$ird/mods/$(basename "$ko")" ] && continue
        cp "$ko" "$ird/mods/$(basename "$ko")"
        echo "$(basename "$ko")" >> "$ird/mods/order"
    done
    (cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
fi

# What the guest runs (read by scripts/kernel-lane-guest.sh).
{
    echo "ROOT='$root'"
    echo "PARENT='$(dirname "$root")'"
    echo "KDIR='$kdir'"
    echo "TARGET_TMPDIR='$root/target/tmp'"
    echo "TESTS='$(echo $tests)'"
    echo "THREADS='${LANE_THREADS:-2}'"
    echo "FILTER='${LANE_FILTER:-}'"
    # Per binary: only the tests of that suite that need this kernel (ovs:
    # the system datapath; its other tests run on the host's netdev one).
    echo "FILTER_ovs='${LANE_FILTER_ovs-system_datapath}'"
    echo "CI='${CI:-}'"
} > "$share/plan.env"

built=$(date +%s)
echo "test-kernel: Linux $kver in qemu (TCG), $(echo $tests | wc -w) test binaries"
# No NIC, no display; the guest powers off when done (-no-reboot turns a
# guest panic into an exit too).
timeout "${LANE_TIMEOUT:-1800}" qemu-system-x86_64 \
    -M pc -accel tcg -cpu max -smp 1 -m 2048 \
    -nographic -serial stdio -monitor none -no-reboot -nic none \
    -kernel "$vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 lane=$share root_share=host0" \
    -virtfs "local,path=/,mount_tag=host0,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$(dirname "$root"),mount_tag=repo0,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$share,mount_tag=lane0,security_model=none,multidevs=remap" \
    </dev/null || echo "test-kernel: qemu exited with $?"
done_at=$(date +%s)

echo "test-kernel: build $((built - start)) s, boot to result $((done_at - built)) s"
status=$(cat "$share/status" 2>/dev/null || echo "none")
kernel_skips=$(cat "$share"/skips/*.log 2>/dev/null | grep -c '^Kernel' || true)
IN_KERNEL_LANE=1 ./scripts/skip-summary.sh "$share/skips"
if [ "$status" != 0 ]; then
    echo "test-kernel: FAILED (guest status: $status)" >&2
    exit 1
fi
if [ "$kernel_skips" != 0 ]; then
    echo "test-kernel: FAILED: $kernel_skips test(s) still skip for a kernel feature on Linux $kver" >&2
    exit 1
fi
echo "test-kernel: ok ($(cat "$share/count" 2>/dev/null || echo '?') tests passed on Linux $kver)"
