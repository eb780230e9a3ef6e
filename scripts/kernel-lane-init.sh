#!/bin/busybox sh
# /init of the kernel lane's initramfs (see scripts/test-kernel.sh): load
# virtio + 9p, mount the host's root read-only with writable tmpfs where
# tests write, run scripts/kernel-lane-guest.sh there, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for ko in $(cat /mods/order); do
    insmod "/mods/$ko" || echo "init: insmod $ko failed"
done
lane=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^lane=//p')
opts=trans=virtio,version=9p2000.L,msize=512000
fail() {
    echo "init: $*"
    poweroff -f
}
mount -t 9p -o "$opts,ro,cache=loose" host0 /newroot || fail "cannot mount the host root"
r=/newroot
mkdir -p /lane
mount -t 9p -o "$opts" lane0 /lane || fail "cannot mount the lane share"
. /lane/plan.env
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/pts $r/dev/shm $r/dev/net
# The static nodes udev/kmod make on a distribution (kmod static-nodes):
# opening one autoloads its module (tun for tap).
[ -e $r/dev/net/tun ] || mknod $r/dev/net/tun c 10 200
mount -t devpts devpts $r/dev/pts
mount -t tmpfs shm $r/dev/shm
mount -t tmpfs run $r/run
mount -t tmpfs tmp $r/tmp
# The checkout's folder again, on top: a clone under /tmp or /run (as a CI
# run may be) and the shared/ beside it would be hidden by those tmpfs
# otherwise. Then the lane share at its own path, and a writable tmpfs
# where the tests write.
if [ "$PARENT" != / ]; then
    mkdir -p "$r$PARENT" 2>/dev/null
    mount -t 9p -o "$opts,ro,cache=loose" repo0 "$r$PARENT" || fail "cannot mount the checkout"
fi
mount -o bind /lane "$r$lane" || fail "cannot bind the lane share"
mount -t tmpfs target-tmp "$r$TARGET_TMPDIR"
# The host may have other mounts under these (a cgroup tree, bpf): none
# are needed. Kernel module autoloading (request_module) runs the helper in
# this root, not the chroot: chroot into the host's kmod with the unpacked
# module tree.
cat > /modprobe <<EOS
#!/bin/busybox sh
exec /bin/chroot /newroot /usr/sbin/modprobe -d '$KDIR' "\$@"
EOS
chmod +x /modprobe
echo /modprobe > /proc/sys/kernel/modprobe
chroot $r /bin/bash "$ROOT/scripts/kernel-lane-guest.sh" "$lane"
echo "init: guest script exited with $?"
sync
poweroff -f
