//! A real runtime on cnibox: Debian's podman (CNI network backend, runc)
//! runs a busybox-static container on podman's default chain (bridge,
//! portmap, firewall, tuning), every one of them cnibox's (its applets come
//! first in the plugin path; the Go reference's directory follows, as on a
//! node that has both).
//!
//! Everything happens in a node netns of the test's own: podman runs under
//! `nsenter --net` (not `ip netns exec`, which remounts /sys and hides the
//! cgroup mounts), with its storage, run dir, config and CNI configs in a
//! temp dir. No registry: the image is imported from a tarball.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

const NET: &str = "cniboxpm";

struct Podman {
    node: TestNs,
    dir: TempDir,
}

impl Podman {
    /// A node netns and a podman home whose CNI plugin path is `plugin_dirs`.
    fn new(plugin_dirs: &[&Path]) -> Podman {
        let dir = TempDir::new("cnibox-podman");
        let d = dir.path();
        let dirs: Vec<String> = plugin_dirs
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        // This VM's cgroup layout is hybrid (crun refuses it) and its
        // rlimits are below podman's defaults: runc, cgroupfs, and limits
        // the test process can grant.
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [{}]\n\
                 network_config_dir = {:?}\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n",
                dirs.join(", "),
                d.join("net.d").display().to_string()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("net.d")).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "plugins": [
                {"type": "bridge", "bridge": "cnipm0", "isGateway": true, "ipMasq": true,
                 "hairpinMode": true,
                 "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                          "ranges": [[{"subnet": "10.89.7.0/24", "gateway": "10.89.7.1"}]],
                          "dataDir": d.join("ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": true},
                 "dataDir": d.join("portmap")},
                {"type": "firewall", "dataDir": d.join("firewall")},
                {"type": "tuning"}
            ]
        });
        std::fs::write(
            d.join("net.d").join(format!("{NET}.conflist")),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();
        // The image: busybox-static with an httpd document root.
        let root = d.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in ["sh", "httpd"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            root.join("www/index.html"),
            "served by a container on cnibox\n",
        )
        .unwrap();
        let p = Podman {
            node: TestNs::new("pmnode"),
            dir,
        };
        let tar = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c . | {} import - localhost/cnibox-bb",
                root.display(),
                p.command_line()
            ))
            .env("CONTAINERS_CONF", p.dir.path().join("containers.conf"))
            .output()
            .unwrap();
        assert!(
            tar.status.success(),
            "import: {}",
            String::from_utf8_lossy(&tar.stderr)
        );
        p
    }

    fn command_line(&self) -> String {
        let d = self.dir.path();
        format!(
            "nsenter --net=/run/netns/{} podman --root {} --runroot {} --storage-driver vfs",
            self.node.name,
            d.join("root").display(),
            d.join("run").display()
        )
    }

    fn run(&self, args: &[&str]) -> Output {
        let line = self.command_line();
        let mut words = line.split(' ');
        Command::new(words.next().unwrap())
            .args(words)
            .args(args)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podman {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// An HTTP GET from the node netns (a thread that enters it), a few
    /// tries while httpd starts; the body, or "" after 5 s.
    fn fetch(&self, host: &str, port: u16) -> String {
        let ns = std::fs::File::open(self.node.path()).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let mut last = String::new();
                for _ in 0..50 {
                    match http_get(host, port) {
                        Ok(body) => return body,
                        Err(e) => last = e.to_string(),
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                eprintln!("GET http://{host}:{port}/: {last}");
                String::new()
            })
            .join()
            .unwrap()
        })
    }
}

fn http_get(host: &str, port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    write!(c, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut resp = String::new();
    c.read_to_string(&mut resp)?;
    match resp.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!("bad response {resp:?}"))),
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "-a"]);
        // vfs layers are plain directories; TempDir removes them.
    }
}

fn have_podman() -> Result<(), String> {
    for (tool, pkg) in [
        ("/usr/bin/podman", "podman"),
        ("/usr/sbin/runc", "runc"),
        ("/bin/busybox", "busybox-static"),
        ("/usr/lib/cni/firewall", "containernetworking-plugins"),
    ] {
        if !Path::new(tool).exists() {
            return Err(format!("{tool} is not installed (apt-get install {pkg})"));
        }
    }
    Ok(())
}

#[test]
fn podman_run_publishes_a_port_through_cnibox_bridge_portmap_firewall_and_tuning() {
    require_root!();
    if let Err(why) = have_podman() {
        skip(SkipKind::Tool, &why);
        return;
    }
    let p = Podman::new(&[bin_dir(), Path::new("/usr/lib/cni")]);
    let id = p.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        NET,
        "-p",
        "18080:80",
        "localhost/cnibox-bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "container id {id:?}");

    // The container's address, as podman reports it from the CNI result.
    let ip = p.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.cniboxpm.IPAddress}}",
        "web",
    ]);
    let ip = ip.trim().to_string();
    assert!(ip.starts_with("10.89.7."), "address {ip:?}");
    assert_eq!(p.fetch(&ip, 80), "served by a container on cnibox\n");
    // The published port, through cnibox portmap's nf_tables DNAT: from the
    // node's own address (output chain) ...
    assert_eq!(
        p.fetch("10.89.7.1", 18080),
        "served by a container on cnibox\n",
        "host port on the bridge address"
    );
    // ... and the rules are cnibox's, in Go HEAD's table, commented with the
    // container ID.
    let rules = p.node.nft_ruleset();
    assert!(rules.contains("table ip cni_hostport"), "{rules}");
    assert!(
        rules.contains(&id),
        "portmap rules carry the container id: {rules}"
    );

    // podman rm: DEL through the chain in reverse; nothing of the container
    // is left on the node.
    p.ok(&["rm", "-f", "web"]);
    let rules = p.node.nft_ruleset();
    assert!(!rules.contains(&id), "portmap rules left after rm: {rules}");
    let left: Vec<String> = std::fs::read_dir(p.dir.path().join("ipam").join(NET))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10."))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "reservations left after rm: {left:?}");
    let links = p.node.link_names();
    assert!(
        links.iter().all(|l| !l.starts_with("veth")),
        "host veth left after rm: {links:?}"
    );
}
