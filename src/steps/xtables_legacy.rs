//! Nodes whose iptables is the legacy (x_tables) flavour: the rules the Go
//! plugin makes live in the kernel's x_tables `filter` table, which has no
//! netlink interface, so here (and only here) the plugin runs the node's
//! `iptables-legacy` / `ip6tables-legacy` binary (or `iptables` when
//! `iptables -V` says "legacy"), with Go's `-C` then `-N`/`-I 1`/`-A`/`-D`.
//!
//! Detection ([`super::xtables::legacy_in_use`]): the kernel lists a `filter`
//! table in /proc/net/ip{,6}_tables_names of our netns while nf_tables has
//! no `filter` table of that family. The rules are the same [`XtRule`]s the
//! nf_tables path writes, printed back as iptables arguments.

use super::xtables::{Want, TABLE};
use crate::cni::CniError;
use crate::netlink::nftables::consts::{NFPROTO_IPV6, NFT_META_IIFNAME};
use crate::netlink::nftables::expr::Base;
use crate::netlink::nftables::xt::{XtExpr, XtRule, NFT_META_OIFNAME};
use crate::netlink::nftables::{CmpOp, Expr, Verdict};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

/// The iptables arguments (after `-A CHAIN`) of one of our rules, as
/// `iptables -S` prints them; `None` for a shape we never build.
pub fn args_of(r: &XtRule) -> Option<Vec<String>> {
    let mut a: Vec<String> = Vec::new();
    let mut it = r.exprs.iter().peekable();
    while let Some(e) = it.next() {
        match e {
            XtExpr::Native(Expr::Payload {
                base: Base::Network,
                offset,
                len,
                ..
            }) => {
                let Some(XtExpr::Native(Expr::Cmp {
                    op: CmpOp::Eq,
                    data,
                    ..
                })) = it.next()
                else {
                    return None;
                };
                let (ip, src) = match (*len, *offset) {
                    (4, o @ (12 | 16)) => {
                        let b: [u8; 4] = data.as_slice().try_into().ok()?;
                        (format!("{}/32", IpAddr::from(b)), o == 12)
                    }
                    (16, o @ (8 | 24)) => {
                        let b: [u8; 16] = data.as_slice().try_into().ok()?;
                        (format!("{}/128", IpAddr::from(b)), o == 8)
                    }
                    _ => return None,
                };
                a.extend([if src { "-s" } else { "-d" }.to_string(), ip]);
            }
            XtExpr::Native(Expr::Meta { key, .. }) => {
                let Some(XtExpr::Native(Expr::Cmp { op, data, .. })) = it.next() else {
                    return None;
                };
                let name = String::from_utf8(data.split(|&b| b == 0).next()?.to_vec()).ok()?;
                if *op == CmpOp::Neq {
                    a.push("!".into());
                }
                let flag = match *key {
                    NFT_META_IIFNAME => "-i",
                    NFT_META_OIFNAME => "-o",
                    _ => return None,
                };
                a.extend([flag.to_string(), name]);
            }
            XtExpr::Match { name, info, .. } if name == "comment" => {
                let text = info.split(|&b| b == 0).next()?;
                a.extend(["-m", "comment", "--comment"].map(String::from));
                a.push(String::from_utf8(text.to_vec()).ok()?);
            }
            XtExpr::Match { name, .. } if name == "conntrack" => {
                // The only conntrack match we build.
                a.extend(["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"].map(String::from));
            }
            XtExpr::Counter => {}
            XtExpr::Native(Expr::Verdict(v)) => {
                let t = match v {
                    Verdict::Accept => "ACCEPT".to_string(),
                    Verdict::Drop => "DROP".to_string(),
                    Verdict::Return => "RETURN".to_string(),
                    Verdict::Jump(c) => c.clone(),
                    Verdict::Goto(_) => return None,
                };
                a.extend(["-j".to_string(), t]);
            }
            _ => return None,
        }
    }
    Some(a)
}

/// The legacy binary for one family.
pub struct Legacy {
    bin: PathBuf,
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn fail(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::internal(format!("firewall (iptables-legacy): {what}: {e}"))
}

impl Legacy {
    /// `iptables-legacy` (`ip6tables-legacy`) in PATH, else `iptables`
    /// (`ip6tables`) if its `-V` says legacy.
    pub fn find(v6: bool) -> Option<Legacy> {
        let base = if v6 { "ip6tables" } else { "iptables" };
        if let Some(bin) = in_path(&format!("{base}-legacy")) {
            return Some(Legacy { bin });
        }
        let bin = in_path(base)?;
        let out = Command::new(&bin).arg("-V").output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("legacy")
            .then_some(Legacy { bin })
    }

    /// Run `bin -w -t filter ARGS`: Ok(true) on exit 0, Ok(false) on exit
    /// 1 (iptables' "no such rule/chain"), an error otherwise.
    fn run(&self, args: &[String]) -> Result<bool, CniError> {
        let out = Command::new(&self.bin)
            .args(["-w", "-t", TABLE])
            .args(args)
            .output()
            .map_err(|e| fail(&format!("run {}", self.bin.display()), e))?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(fail(
                &format!("{} {}", self.bin.display(), args.join(" ")),
                String::from_utf8_lossy(&out.stderr).trim(),
            )),
        }
    }

    fn spec(chain: &str, r: &XtRule, op: &str) -> Result<Vec<String>, CniError> {
        let mut v = vec![op.to_string(), chain.to_string()];
        if op == "-I" {
            v.push("1".into());
        }
        v.extend(args_of(r).ok_or_else(|| fail("rule", "not expressible as iptables arguments"))?);
        Ok(v)
    }

    fn exists(&self, r: &XtRule) -> Result<bool, CniError> {
        self.run(&Self::spec(&r.chain, r, "-C")?)
    }

    /// Go's EnsureChain / InsertUnique / AppendUnique, in plan order.
    pub fn apply(&self, wants: &[Want]) -> Result<(), CniError> {
        for w in wants {
            match w {
                Want::Chain(c) => {
                    if !self.run(&["-S".into(), c.clone()])? {
                        self.run(&["-N".into(), c.clone()])?;
                    }
                }
                Want::Rule { rule, prepend } => {
                    if !self.exists(rule)? {
                        let op = if *prepend { "-I" } else { "-A" };
                        if !self.run(&Self::spec(&rule.chain, rule, op)?)? {
                            return Err(fail(
                                "add rule",
                                args_of(rule).unwrap_or_default().join(" "),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `-D` each rule while it exists (duplicates too); failures ignored, as
    /// Go ignores them.
    pub fn delete(&self, rules: &[XtRule]) {
        for r in rules {
            let Ok(spec) = Self::spec(&r.chain, r, "-D") else {
                continue;
            };
            for _ in 0..16 {
                if !matches!(self.run(&spec), Ok(true)) {
                    break;
                }
            }
        }
    }

    /// CHECK: every rule is there.
    pub fn check(&self, rules: &[XtRule]) -> Result<(), CniError> {
        for r in rules {
            if !self.exists(r)? {
                return Err(CniError::internal(format!(
                    "firewall: expected rule not found in {} filter {}: {}",
                    if r.family == NFPROTO_IPV6 {
                        "ip6tables"
                    } else {
                        "iptables"
                    },
                    r.chain,
                    args_of(r).unwrap_or_default().join(" ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::xtables::*;
    use super::*;
    use crate::netlink::nftables::consts::NFPROTO_IPV4;

    fn line(r: &XtRule) -> String {
        let a: Vec<String> = args_of(r)
            .unwrap()
            .into_iter()
            .map(|s| {
                if s.contains(' ') {
                    format!("\"{s}\"")
                } else {
                    s
                }
            })
            .collect();
        format!("-A {} {}", r.chain, a.join(" "))
    }

    // Lines of fixtures/goref-head-firewall.iptables-save, but in the order
    // of our expressions (iptables-save puts -m before -j too).
    #[test]
    fn our_rules_print_as_the_go_plugin_wrote_them() {
        assert_eq!(
            line(&forward_jump(NFPROTO_IPV4)),
            "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD"
        );
        let [d, s] = ip_rules(&"10.99.3.2".parse().unwrap());
        assert_eq!(
            line(&d),
            "-A CNI-FORWARD -d 10.99.3.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        );
        assert_eq!(line(&s), "-A CNI-FORWARD -s 10.99.3.2/32 -j ACCEPT");
        let [_, s6] = ip_rules(&"fd99:3::2".parse().unwrap());
        assert_eq!(line(&s6), "-A CNI-FORWARD -s fd99:3::2/128 -j ACCEPT");
        let plan = isolation_plan(NFPROTO_IPV6, "cnifw0", Policy::SameBridge);
        let lines: Vec<String> = plan
            .iter()
            .filter_map(|w| match w {
                Want::Rule { rule, .. } => Some(line(rule)),
                Want::Chain(_) => None,
            })
            .collect();
        assert_eq!(
            lines[1],
            "-A CNI-ISOLATION-STAGE-1 -i cnifw0 ! -o cnifw0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2"
        );
        assert_eq!(
            lines[3],
            "-A CNI-ISOLATION-STAGE-2 -o cnifw0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j DROP"
        );
    }
}
