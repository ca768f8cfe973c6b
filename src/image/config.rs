//! Image configs (OCI `application/vnd.oci.image.config.v1+json` or Docker's equivalent):
//! platform, rootfs diff IDs and container defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ManifestError;
use crate::id::DiffId;

/// An image config (OCI `application/vnd.oci.image.config.v1+json` or Docker's equivalent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// Architecture variant (`v8`, `v7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Defaults for containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff IDs (digests of the uncompressed tars), bottom first.
    pub rootfs: RootFs,
    /// Build history, kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<serde_json::Value>>,
}

impl ImageConfig {
    /// The platform as Docker shows it: `os/architecture`, plus `/variant` when there is one.
    pub fn platform(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The `rootfs` section of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    pub r#type: String,
    /// Digests of the uncompressed layer tars, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<DiffId>,
}

/// Container defaults of an image config, in Docker's PascalCase field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `user:group`, `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `port/proto` -> `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Volume paths -> `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Signal to stop the container (`SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Every other field (Healthcheck, ArgsEscaped, OnBuild, ...), kept as JSON.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Parses an image config; `rootfs.type` must be `layers`.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })?;
    if config.rootfs.r#type != "layers" {
        return Err(ManifestError::Invalid {
            what: "image config",
            reason: format!(
                "rootfs.type is {:?}, expected \"layers\"",
                config.rootfs.r#type
            ),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "nobody",
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/bin/sh"],
    "Entrypoint": null,
    "WorkingDir": "/srv",
    "Labels": {"org.opencontainers.image.title": "x"},
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
    "ArgsEscaped": true,
    "OnBuild": null
  },
  "created": "2024-01-26T23:44:46.0Z",
  "history": [{"created": "2024-01-26T23:44:45Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "}],
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": ["sha256:d4fc045c9e3a848011de66f34b81f052d4f2c15a17bb196d637e526349601820"]
  }
}"#;

    #[test]
    fn parses_image_config() {
        let c = parse_config(CONFIG.as_bytes()).unwrap();
        assert_eq!(
            (c.os.as_str(), c.architecture.as_str(), c.variant.as_deref()),
            ("linux", "amd64", None)
        );
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.history.as_ref().map(Vec::len), Some(1));
        let cc = c.config.unwrap();
        assert_eq!(cc.user.as_deref(), Some("nobody"));
        assert_eq!(cc.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(cc.entrypoint, None);
        assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(cc.volumes.unwrap().contains_key("/data"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(cc.labels.unwrap()["org.opencontainers.image.title"], "x");
        assert_eq!(
            cc.extra.get("ArgsEscaped"),
            Some(&serde_json::Value::Bool(true))
        );
        assert!(cc.extra.contains_key("Hostname"));
    }

    #[test]
    fn refuses_bad_configs() {
        let err = parse_config(b"\x1f\x8b\x08\x00").unwrap_err();
        assert!(err.to_string().starts_with("invalid image config"), "{err}");
        let err = parse_config(
            CONFIG
                .replace(r#""type": "layers""#, r#""type": "snapshots""#)
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("rootfs.type"), "{err}");
        let err = parse_config(br#"{"architecture":"amd64","os":"linux"}"#).unwrap_err();
        assert!(err.to_string().contains("rootfs"), "{err}");
        // A minimal config without a container section is fine.
        let c = parse_config(br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        assert_eq!(c.variant.as_deref(), Some("v7"));
        assert!(c.config.is_none());
        assert_eq!(c.platform(), "linux/arm/v7");
        let plain = |variant: &str| {
            let json = format!(
                r#"{{"architecture":"amd64","os":"linux"{variant},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            parse_config(json.as_bytes()).unwrap().platform()
        };
        assert_eq!(plain(""), "linux/amd64");
        assert_eq!(plain(r#","variant":"""#), "linux/amd64");
    }
}
