//! libcni's runtime side (`libcni/api.go` at HEAD): run a network list's
//! plugins for ADD, CHECK, DEL, STATUS and GC with the configs, environment
//! and result cache libcni gives them. Errors are libcni's strings.

use super::cache::{self, RuntimeConf};
use super::conf::{self, ConfList, PluginConf};
use super::gojson;
use crate::cni::env::{self, Command, Env};
use crate::cni::json;
use crate::cni::result::CniResult;
use crate::cni::types::Attachment;
use crate::cni::version;
use crate::cni::Invoker;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How plugins are found and run, and where the cache lives.
pub struct Runtime {
    /// `CNI_PATH` as given (libcni passes its split list joined again).
    pub path: String,
    pub cache_dir: PathBuf,
    pub invoker: Invoker,
    /// The environment plugins inherit (ours), before the six `CNI_*`.
    pub base_env: Env,
}

impl Runtime {
    /// libcni's `FindInPath`, with its messages.
    fn find(&self, plugin_type: &str) -> Result<PathBuf, String> {
        if plugin_type.is_empty() {
            return Err("no plugin name provided".into());
        }
        if plugin_type.contains('/') {
            return Err(format!("invalid plugin name: {plugin_type}"));
        }
        let dirs: Vec<&str> = if self.path.is_empty() {
            Vec::new()
        } else {
            self.path.split(':').collect()
        };
        if dirs.is_empty() {
            return Err("no paths provided".into());
        }
        for d in &dirs {
            let p = Path::new(d).join(plugin_type);
            if std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
                return Ok(p);
            }
        }
        Err(format!(
            "failed to find plugin {plugin_type:?} in path [{}]",
            dirs.join(" ")
        ))
    }

    /// `Args.AsEnv`: our environment with all six `CNI_*` set.
    fn env(&self, command: Command, rt: &RuntimeConf) -> Env {
        let mut e = self.base_env.clone();
        let args: Vec<String> = rt.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        e.set("CNI_COMMAND", command.as_str());
        e.set("CNI_CONTAINERID", &rt.container_id);
        e.set("CNI_NETNS", &rt.netns);
        e.set("CNI_ARGS", &args.join(";"));
        e.set("CNI_IFNAME", &rt.ifname);
        e.set("CNI_PATH", &self.path);
        e
    }

    /// Run one plugin; stdout on success.
    fn exec(
        &self,
        p: &PluginConf,
        command: Command,
        config: &[u8],
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, String> {
        self.find(&p.plugin_type)?;
        self.invoker
            .run(&p.plugin_type, command, config, &self.env(command, rt))
            .map_err(|e| e.to_string())
    }

    /// `buildOneConfig`: name, cniVersion, prevResult, then `runtimeConfig`
    /// from the capabilities the plugin enables and the caller supplied
    /// (replacing a static one only when at least one matched).
    fn build(
        &self,
        list: &ConfList,
        p: &PluginConf,
        prev: Option<&CniResult>,
        rt: &RuntimeConf,
    ) -> Result<PluginConf, String> {
        let prev = match prev {
            Some(r) => Some(prev_result_json(r)?),
            None => None,
        };
        let extra: Vec<(&str, &str)> = prev.iter().map(|j| ("prevResult", j.as_str())).collect();
        let conf = self.list_level_conf(list, p, &extra)?;
        let mut rc = serde_json::Map::new();
        if let Some(caps) = &rt.capability_args {
            for (cap, on) in &conf.capabilities {
                if let (true, Some(v)) = (*on, caps.get(cap)) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
        if rc.is_empty() {
            return Ok(conf);
        }
        let rc = gojson::marshal(&Value::Object(rc));
        conf::inject(&conf, &[("runtimeConfig", &rc)])
    }

    fn add_one(
        &self,
        list: &ConfList,
        p: &PluginConf,
        prev: Option<&CniResult>,
        rt: &RuntimeConf,
    ) -> Result<CniResult, String> {
        self.find(&p.plugin_type)?;
        env::validate_container_id(&rt.container_id).map_err(|e| e.to_string())?;
        env::validate_network_name(&list.name).map_err(|e| e.to_string())?;
        env::validate_ifname(&rt.ifname).map_err(|e| e.to_string())?;
        let conf = self.build(list, p, prev, rt)?;
        // The version `build` put in the config (empty reads as 0.1.0).
        let version = match list.cni_version.as_str() {
            "" => "0.1.0",
            v => v,
        };
        self.invoker
            .add(
                &p.plugin_type,
                &conf.bytes,
                version,
                &self.env(Command::Add, rt),
            )
            .map_err(|e| e.to_string())
    }

    /// `AddNetworkList`: plugins in order, each result the next one's
    /// prevResult; the cache is written only after the last one.
    pub fn add_list(&self, list: &ConfList, rt: &RuntimeConf) -> Result<CniResult, String> {
        let mut result: Option<CniResult> = None;
        for p in &list.plugins {
            let r = self
                .add_one(list, p, result.as_ref(), rt)
                .map_err(|e| format!("plugin {} failed (add): {e}", p.description()))?;
            result = Some(r);
        }
        let result = result.ok_or("no plugin configs found")?;
        crate::steps::fault::point("tool:before-cache").map_err(|e| e.to_string())?;
        let write = || -> Result<(), String> {
            let p = cache::path(&self.cache_dir, &list.name, rt)?;
            let bytes = cache::encode(&list.bytes, &list.name, rt, &result)?;
            cache::write_atomic(&p, bytes.as_bytes())
        };
        write().map_err(|e| format!("failed to set network {:?} cached result: {e}", list.name))?;
        Ok(result)
    }

    /// `DelNetworkList`: the cached result (>= 0.4.0; an unusable cache is
    /// deleted and ignored) as prevResult, plugins in reverse order, the
    /// first error stops it and keeps the cache.
    pub fn del_list(&self, list: &ConfList, rt: &RuntimeConf) -> Result<(), String> {
        safe_names(list, rt)?;
        let mut cached = None;
        if version::ge(&list.cni_version, "0.4.0")? {
            match cache::cached_result(&self.cache_dir, &list.name, &list.cni_version, rt) {
                Ok(r) => cached = r,
                Err(_) => cache::remove(&self.cache_dir, &list.name, rt),
            }
        }
        for p in list.plugins.iter().rev() {
            let conf = self
                .build(list, p, cached.as_ref(), rt)
                .and_then(|c| self.exec(p, Command::Del, &c.bytes, rt));
            if let Err(e) = conf {
                return Err(format!("plugin {} failed (delete): {e}", p.description()));
            }
        }
        crate::steps::fault::point("tool:del-before-cache").map_err(|e| e.to_string())?;
        // libcni removes the cache only when it read a result from it, so
        // a < 0.4.0 attachment's file stays forever; we always remove it.
        cache::remove(&self.cache_dir, &list.name, rt);
        Ok(())
    }

    /// `CheckNetworkList`.
    pub fn check_list(&self, list: &ConfList, rt: &RuntimeConf) -> Result<(), String> {
        if !version::ge(&list.cni_version, "0.4.0")? {
            return Err(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            ));
        }
        if list.disable_check {
            return Ok(());
        }
        safe_names(list, rt)?;
        let cached = cache::cached_result(&self.cache_dir, &list.name, &list.cni_version, rt)
            .map_err(|e| format!("failed to get network {:?} cached result: {e}", list.name))?;
        for p in &list.plugins {
            let conf = self.build(list, p, cached.as_ref(), rt)?;
            self.exec(p, Command::Check, &conf.bytes, rt)?;
        }
        Ok(())
    }

    /// The config GC and STATUS send: the plugin's own plus name and
    /// cniVersion (and GC's attachment lists).
    fn list_level_conf(
        &self,
        list: &ConfList,
        p: &PluginConf,
        extra: &[(&str, &str)],
    ) -> Result<PluginConf, String> {
        let name = gojson::string(&list.name);
        let ver = gojson::string(&list.cni_version);
        let mut inject: Vec<(&str, &str)> = vec![("name", &name), ("cniVersion", &ver)];
        inject.extend_from_slice(extra);
        conf::inject(p, &inject)
    }

    /// `GetStatusNetworkList`: nothing below 1.1.0; plugins in order, the
    /// first error is returned as the plugin gave it.
    pub fn status_list(&self, list: &ConfList) -> Result<(), String> {
        if !version::ge(&list.cni_version, "1.1.0").unwrap_or(false) {
            return Ok(());
        }
        for p in &list.plugins {
            let conf = self.list_level_conf(list, p, &[]).map_err(|e| {
                format!(
                    "failed to generate configuration to get plugin STATUS {}: {e}",
                    p.plugin_type
                )
            })?;
            self.exec(p, Command::Status, &conf.bytes, &RuntimeConf::default())?;
        }
        Ok(())
    }

    /// `GCNetworkList`: DEL every cached attachment of this network that is
    /// not in `valid` (with the current config and the cached netns, args
    /// and capability args), then (>= 1.1.0) GC to every plugin with the
    /// valid list. Every error is collected. `valid: None` is cnitool's
    /// "no list": everything cached goes, and no list key is sent.
    pub fn gc_list(
        &self,
        list: &ConfList,
        valid: Option<&[(String, String)]>,
    ) -> Result<(), String> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errs: Vec<String> = Vec::new();
        // libcni gives up silently (no DELs, no GC) when it cannot list the
        // cache; we list what we can (a missing directory is empty) and GC.
        let attachments = match cache::attachments(&self.cache_dir) {
            Ok((a, _)) => a,
            Err(e) => {
                errs.push(format!("failed to list cached attachments: {e}"));
                Vec::new()
            }
        };
        for a in attachments
            .iter()
            .filter(|a| a.info.network_name == list.name)
        {
            let key = (a.info.container_id.clone(), a.info.if_name.clone());
            if valid.is_some_and(|v| v.contains(&key)) {
                continue;
            }
            let rt = RuntimeConf {
                container_id: a.info.container_id.clone(),
                netns: a.info.netns.clone(),
                ifname: a.info.if_name.clone(),
                args: a.info.cni_args.clone().unwrap_or_default(),
                capability_args: a.info.capability_args.clone(),
            };
            if let Err(e) = self.del_list(list, &rt) {
                errs.push(format!(
                    "failed to delete stale attachment {} {}: {e}",
                    rt.container_id, rt.ifname
                ));
            }
        }
        cache::sweep_temps(&self.cache_dir, &list.name, valid);
        if version::ge(&list.cni_version, "1.1.0").unwrap_or(false) {
            let valid_json = valid.map(|v| {
                let list: Vec<Attachment> = v
                    .iter()
                    .map(|(cid, ifname)| Attachment {
                        container_id: cid.clone(),
                        ifname: ifname.clone(),
                    })
                    .collect();
                json::to_go_compact(&list)
            });
            let extra: Vec<(&str, &str)> = match &valid_json {
                Some(v) => vec![("cni.dev/valid-attachments", v), ("cni.dev/attachments", v)],
                None => Vec::new(),
            };
            for p in &list.plugins {
                let r = self
                    .list_level_conf(list, p, &extra)
                    .map_err(|e| {
                        format!(
                            "failed to generate configuration to GC plugin {}: {e}",
                            p.plugin_type
                        )
                    })
                    .and_then(|c| {
                        self.exec(p, Command::Gc, &c.bytes, &RuntimeConf::default())
                            .map_err(|e| format!("failed to GC plugin {}: {e}", p.plugin_type))
                    });
                if let Err(e) = r {
                    errs.push(e);
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }
}

/// The network name, container ID and interface name become a cache file
/// name: refuse ones that could leave the results directory (libcni checks
/// them on ADD only; plugins check the ID and ifname on DEL and CHECK too).
fn safe_names(list: &ConfList, rt: &RuntimeConf) -> Result<(), String> {
    env::validate_network_name(&list.name).map_err(|e| e.to_string())?;
    env::validate_container_id(&rt.container_id).map_err(|e| e.to_string())?;
    env::validate_ifname(&rt.ifname).map_err(|e| e.to_string())
}

/// A result as libcni injects it into the next config: marshalled in its
/// own version (1.x through a map, sorted; 0.x in struct order).
fn prev_result_json(r: &CniResult) -> Result<String, String> {
    let pretty = r
        .to_version_string(&r.cni_version)
        .map_err(|e| e.to_string())?;
    let doc = json::parse(pretty.as_bytes()).map_err(|e| e.to_string())?;
    Ok(json::to_go_compact(&doc))
}
