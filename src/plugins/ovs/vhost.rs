//! The vhost-user kinds (OVS-DPDK, as Intel's userspace CNI): no kernel
//! interface, the container gets a unix socket in the shared dir,
//! `<sharedDir>/<first 12 of containerID>-<ifname>`, reported as the
//! interface's `socketPath` (CNI 1.1), plus a `configData-<same>.json` file
//! for DPDK apps. Client mode: OVS connects to that path (the app serves
//! it). Server mode: OVS makes the socket in its own dir and cnibox moves
//! it into the shared dir.

use super::conf::{Kind, Settings};
use super::ports;
use super::txn::PortSpec;
use crate::cni::result::{CniResult, Interface};
use crate::cni::{CniError, Request};
use crate::ovsdb::{ops, Client};
use crate::steps::fault;
use crate::steps::undo::Undo;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// sun_path holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// `<cid12>-<ifname>`.
pub fn socket_name(container_id: &str, ifname: &str) -> String {
    let cid12: String = container_id.chars().take(12).collect();
    format!("{cid12}-{ifname}")
}

fn socket_path(s: &Settings, cid: &str, ifname: &str) -> PathBuf {
    Path::new(&s.shared_dir).join(socket_name(cid, ifname))
}

fn config_data_path(s: &Settings, cid: &str, ifname: &str) -> PathBuf {
    Path::new(&s.shared_dir).join(format!("configData-{}.json", socket_name(cid, ifname)))
}

pub fn add(req: &Request, s: &Settings, mut db: Client) -> Result<CniResult, CniError> {
    let name = socket_name(&req.container_id, &req.ifname);
    let path = socket_path(s, &req.container_id, &req.ifname);
    let path_str = path.to_string_lossy().to_string();
    if path_str.len() > MAX_SOCKET_PATH {
        return Err(CniError::config(format!(
            "sharedDir: socket path {path_str:?} is {} bytes, over the {MAX_SOCKET_PATH} a unix \
             socket path can hold",
            path_str.len()
        )));
    }
    let server_sock = Path::new(&s.ovs_socket_dir).join(&name);
    if s.kind == Kind::VhostServer && server_sock.to_string_lossy().len() > MAX_SOCKET_PATH {
        return Err(CniError::config(format!(
            "ovsSocketDir: socket path {:?} is too long for a unix socket",
            server_sock
        )));
    }
    std::fs::create_dir_all(&s.shared_dir)
        .map_err(|e| CniError::io(format!("sharedDir: cannot create {}: {e}", s.shared_dir)))?;

    let (alloc, mut result) = ports::allocate(req, s)?;

    let mut undo = Undo::new();
    let port_name = name.clone();
    undo.push(move || {
        let _ = ports::remove_ours(s, &ports::attachment_ids(req), Some(&port_name));
        remove_files(s, &req.container_id, &req.ifname);
    });
    let (iface_type, options) = match s.kind {
        Kind::VhostClient => (
            "dpdkvhostuserclient",
            vec![("vhost-server-path".to_string(), path_str.clone())],
        ),
        _ => ("dpdkvhostuser", Vec::new()),
    };
    let port = PortSpec {
        name: name.clone(),
        iface_type: iface_type.into(),
        options,
        mtu_request: (s.mtu > 0).then_some(s.mtu),
        ..s.port_spec(req)
    };
    let iface_uuid = ports::insert_ports(&mut db, s, &[port])?;
    fault::point("ovs:after-port")?;
    ports::applied_without_error(&mut db, &iface_uuid)?;
    if s.kind == Kind::VhostServer {
        // OVS made the socket in its dir: move it where the container sees it.
        std::fs::rename(&server_sock, &path).map_err(|e| {
            CniError::io(format!(
                "cannot move the vhost-user socket {} to {path_str}: {e}",
                server_sock.display()
            ))
        })?;
    }

    result.interfaces = vec![Interface {
        name,
        socket_path: path_str,
        ..Default::default()
    }];
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    result.cni_version = req.version.clone();
    write_config_data(req, s, &result)?;
    undo.commit();
    if let Some(a) = alloc {
        a.keep();
    }
    Ok(result)
}

/// The userspace CNI's ConfigurationData, roles seen from the container
/// (OVS client means the app serves).
fn write_config_data(req: &Request, s: &Settings, result: &CniResult) -> Result<(), CniError> {
    let mode = if s.kind == Kind::VhostClient {
        "server"
    } else {
        "client"
    };
    let ip_result = result.to_version_value(&req.version).unwrap_or(Value::Null);
    let mut data = json!({
        "containerId": req.container_id,
        "ifName": req.ifname,
        "name": req.name(),
        "config": {
            "engine": "ovs-dpdk",
            "iftype": "vhostuser",
            "netType": "bridge",
            "vhost": {"mode": mode, "socketfile": socket_name(&req.container_id, &req.ifname)},
            "bridge": {"bridgeName": s.bridge},
        },
        "ipResult": ip_result,
    });
    if let Some(tag) = s.tag {
        data["config"]["bridge"]["vlanId"] = json!(tag);
    }
    let path = config_data_path(s, &req.container_id, &req.ifname);
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(&data).map_err(|e| CniError::internal(e.to_string()))?;
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CniError::io(format!("cannot write {}: {e}", path.display()))
        })
}

/// Our socket and config-data files of one attachment; missing is fine.
pub fn remove_files(s: &Settings, cid: &str, ifname: &str) {
    if s.shared_dir.is_empty() {
        return;
    }
    let data = config_data_path(s, cid, ifname);
    for p in [
        socket_path(s, cid, ifname),
        data.with_extension("json.tmp"),
        data,
    ] {
        let _ = std::fs::remove_file(p);
    }
}

pub fn del(req: &Request, s: &Settings) -> Result<(), CniError> {
    remove_files(s, &req.container_id, &req.ifname);
    Ok(())
}

/// Client mode: OVS reports itself a client of our path; server mode: the
/// socket is in the shared dir.
pub fn check(req: &Request, s: &Settings, iface: &Value) -> Result<(), CniError> {
    let path = socket_path(s, &req.container_id, &req.ifname);
    match s.kind {
        Kind::VhostClient => {
            let status = ops::map_items(&iface["status"]);
            if status.get("mode").and_then(Value::as_str) != Some("client") {
                return Err(CniError::internal(format!(
                    "OVS interface {} is not in vhost-user client mode: {:?}",
                    iface["name"], status
                )));
            }
        }
        _ => {
            if !path.exists() {
                return Err(CniError::internal(format!(
                    "vhost-user socket {} is missing",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_take_12_chars_of_short_ids_too() {
        assert_eq!(socket_name("0123456789abcdef", "net1"), "0123456789ab-net1");
        assert_eq!(socket_name("abc", "eth0"), "abc-eth0");
    }
}
