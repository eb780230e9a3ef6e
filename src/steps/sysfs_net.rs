//! Network devices found through sysfs (host-device's `kernelpath`,
//! `pciBusID` and `runtimeConfig.deviceID`). The sysfs root is a parameter
//! so the lookups can be tested on a fake tree.

use std::path::{Path, PathBuf};

/// The real sysfs.
pub const SYS: &str = "/sys";
const DPDK_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// The first entry of a sysfs `net/` directory.
pub fn first_netdev(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The netdev of a PCI device (or of its virtio child).
pub fn pci_netdev(sys: &Path, id: &str) -> Option<String> {
    let dev = sys.join("bus/pci/devices").join(id);
    if let Some(n) = first_netdev(&dev.join("net")) {
        return Some(n);
    }
    // virtio devices keep theirs one level down.
    let mut virtio: Vec<PathBuf> = std::fs::read_dir(&dev)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("virtio"))
        })
        .collect();
    virtio.sort();
    virtio.iter().find_map(|p| first_netdev(&p.join("net")))
}

/// Bound to a DPDK driver (vfio-pci, uio_pci_generic, igb_uio): no netdev.
pub fn pci_is_dpdk(sys: &Path, id: &str) -> bool {
    std::fs::read_link(sys.join("bus/pci/devices").join(id).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|d| DPDK_DRIVERS.contains(&d.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_virtio_and_dpdk_devices_in_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("sysfs-net-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pci = root.join("bus/pci/devices");
        let mk = |p: PathBuf| std::fs::create_dir_all(p).unwrap();
        mk(pci.join("0000:01:00.0/net/enp1s0"));
        mk(pci.join("0000:01:00.0/net/enp1s0d1"));
        mk(pci.join("0000:01:00.1/virtio3/net/eth7"));
        mk(pci.join("0000:02:00.0"));
        mk(root.join("bus/pci/drivers/vfio-pci"));
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/vfio-pci",
            pci.join("0000:02:00.0/driver"),
        )
        .unwrap();
        assert_eq!(pci_netdev(&root, "0000:01:00.0").as_deref(), Some("enp1s0"));
        assert_eq!(pci_netdev(&root, "0000:01:00.1").as_deref(), Some("eth7"));
        assert_eq!(pci_netdev(&root, "0000:02:00.0"), None);
        assert!(pci_is_dpdk(&root, "0000:02:00.0"));
        assert!(!pci_is_dpdk(&root, "0000:01:00.0"));
        assert!(!pci_is_dpdk(&root, "0000:09:00.0"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
