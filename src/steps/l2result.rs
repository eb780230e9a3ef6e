//! Main plugins without IPAM (tap, host-device, macvlan): their result has
//! interfaces and no IPs, which cniVersion 0.1.0/0.2.0 cannot express. The
//! reference finds out only when printing the result, after the link was
//! made, and leaves it behind; we refuse before anything changes.

use crate::cni::CniError;

/// Code 1 (incompatible CNI versions) for an L2 ADD at 0.1.0/0.2.0.
pub fn refuse_old_version(version: &str) -> Result<(), CniError> {
    if matches!(version, "0.1.0" | "0.2.0") {
        return Err(CniError::new(
            1,
            format!(
                "cniVersion: a result without IP addresses (no ipam) cannot be given at \
                 cniVersion {version}: use 0.3.0 or later"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pre_0_3_versions_are_refused() {
        assert_eq!(refuse_old_version("0.2.0").unwrap_err().code, 1);
        assert!(refuse_old_version("0.1.0").is_err());
        for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            assert!(refuse_old_version(v).is_ok(), "{v}");
        }
    }
}
