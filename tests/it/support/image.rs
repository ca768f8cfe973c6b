//! Build OCI / Docker schema2 images in memory and push them to a registry.
//!
//! Layers come from in-memory tar entries (written with the `tar` crate, xattrs and long
//! names as PAX records) or from an existing `.tar.gz` such as the Alpine minirootfs.

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::{Value, json};

use super::registry::Registry;
use super::sha256_digest;

/// The mtime given to entries that do not set one (2023-11-14T22:13:20Z).
pub const DEFAULT_MTIME: u64 = 1_700_000_000;

/// `created` of the images' configs.
pub const CREATED: &str = "2024-09-06T11:34:00Z";

pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Which family of media types the manifests, configs and layers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

// ---------------------------------------------------------------------------------------
// Tar entries

#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// Hard link to another path of the same layer.
    Hardlink(String),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
}

/// One tar entry. Paths are relative (`etc/passwd`), directories get a trailing `/` in the
/// archive as Go's archive/tar writes them.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.trim_end_matches('/').to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            xattrs: Vec::new(),
        }
    }
    pub fn file(path: &str, content: impl Into<Vec<u8>>) -> Entry {
        Entry::new(path, Kind::File(content.into()), 0o644)
    }
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, Kind::Dir, 0o755)
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Symlink(target.to_string()), 0o777)
    }
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::new(path, Kind::Hardlink(target.to_string()), 0o644)
    }
    pub fn char_dev(path: &str, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::CharDev(major, minor), 0o666)
    }
    pub fn block_dev(path: &str, major: u32, minor: u32) -> Entry {
        Entry::new(path, Kind::BlockDev(major, minor), 0o660)
    }
    pub fn fifo(path: &str) -> Entry {
        Entry::new(path, Kind::Fifo, 0o644)
    }
    /// An AUFS-style whiteout for `path`: an empty file `<dir>/.wh.<name>`.
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = split_parent(path);
        Entry::new(&format!("{dir}.wh.{name}"), Kind::File(Vec::new()), 0o644)
    }
    /// An opaque-directory marker for `dir`: an empty file `<dir>/.wh..wh..opq`.
    pub fn opaque(dir: &str) -> Entry {
        let dir = dir.trim_end_matches('/');
        Entry::new(
            &format!("{dir}/.wh..wh..opq"),
            Kind::File(Vec::new()),
            0o644,
        )
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }
    pub fn xattr(mut self, name: &str, value: impl Into<Vec<u8>>) -> Entry {
        self.xattrs.push((name.to_string(), value.into()));
        self
    }
}

fn split_parent(path: &str) -> (String, String) {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => (path[..=i].to_string(), path[i + 1..].to_string()),
        None => (String::new(), path.to_string()),
    }
}

/// Serialise entries to an uncompressed tar stream, in the given order.
pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let (etype, data): (tar::EntryType, &[u8]) = match &e.kind {
            Kind::File(c) => (tar::EntryType::Regular, c),
            Kind::Dir => (tar::EntryType::Directory, &[]),
            Kind::Symlink(_) => (tar::EntryType::Symlink, &[]),
            Kind::Hardlink(_) => (tar::EntryType::Link, &[]),
            Kind::CharDev(..) => (tar::EntryType::Char, &[]),
            Kind::BlockDev(..) => (tar::EntryType::Block, &[]),
            Kind::Fifo => (tar::EntryType::Fifo, &[]),
        };
        h.set_entry_type(etype);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(data.len() as u64);
        let name = if matches!(e.kind, Kind::Dir) {
            format!("{}/", e.path)
        } else {
            e.path.clone()
        };
        if name.len() > 100 || !name.is_ascii() || h.set_path(&name).is_err() {
            pax.push(("path".into(), name.clone().into_bytes()));
            let short: String = name.chars().filter(char::is_ascii).take(99).collect();
            let field = &mut h.as_old_mut().name;
            field.fill(0);
            field[..short.len()].copy_from_slice(short.as_bytes());
        }
        match &e.kind {
            Kind::Symlink(t) | Kind::Hardlink(t)
                if t.len() > 100 || !t.is_ascii() || h.set_link_name(t).is_err() =>
            {
                pax.push(("linkpath".into(), t.clone().into_bytes()));
                h.set_link_name("pax-linkpath").expect("short link name");
            }
            Kind::CharDev(ma, mi) | Kind::BlockDev(ma, mi) => {
                h.set_device_major(*ma).expect("device major");
                h.set_device_minor(*mi).expect("device minor");
            }
            _ => {}
        }
        for (k, v) in &e.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .expect("append PAX extensions");
        }
        h.set_cksum();
        b.append(&h, data).expect("append tar entry");
    }
    b.into_inner().expect("finish tar")
}

// ---------------------------------------------------------------------------------------
// Layers

/// One layer's uncompressed tar, plus the original gzip bytes when it came from a `.tar.gz`.
#[derive(Clone)]
pub struct Layer {
    tar: Vec<u8>,
    gzip_original: Option<Vec<u8>>,
}

impl Layer {
    pub fn from_entries(entries: &[Entry]) -> Layer {
        Layer {
            tar: tar_bytes(entries),
            gzip_original: None,
        }
    }

    /// A layer from an uncompressed tar stream given byte for byte (e.g. from [`RawTar`] or
    /// GNU tar).
    pub fn from_tar(tar: Vec<u8>) -> Layer {
        Layer {
            tar,
            gzip_original: None,
        }
    }

    /// A layer from a `.tar.gz` file; pushed as gzip, its bytes are used unchanged.
    pub fn from_tar_gz(path: &Path) -> Layer {
        let gz = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap_or_else(|e| panic!("gunzip {}: {e}", path.display()));
        Layer {
            tar,
            gzip_original: Some(gz),
        }
    }

    pub fn tar(&self) -> &[u8] {
        &self.tar
    }

    pub fn diff_id(&self) -> String {
        sha256_digest(&self.tar)
    }

    /// The blob bytes for a compression.
    pub fn blob(&self, c: Compression) -> Vec<u8> {
        match c {
            Compression::None => self.tar.clone(),
            Compression::Gzip => match &self.gzip_original {
                Some(gz) => gz.clone(),
                None => {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(&self.tar).expect("gzip");
                    enc.finish().expect("gzip finish")
                }
            },
            Compression::Zstd => zstd::encode_all(&self.tar[..], 3).expect("zstd"),
        }
    }
}

/// A layer as pushed: blob bytes, digest and media type, and its real diff_id.
#[derive(Clone, Debug)]
pub struct BlobLayer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub compression: Compression,
    /// sha256 of the uncompressed tar (what the config should say).
    pub diff_id: String,
}

impl BlobLayer {
    /// The 12 hex digits Docker-style progress lines use for this layer.
    pub fn short_id(&self) -> &str {
        &self.digest["sha256:".len().."sha256:".len() + 12]
    }
}

fn layer_media_type(flavor: Flavor, c: Compression) -> &'static str {
    match (flavor, c) {
        (Flavor::Oci, Compression::None) => media::OCI_LAYER,
        (Flavor::Oci, Compression::Gzip) => media::OCI_LAYER_GZIP,
        (Flavor::Docker, Compression::None) => media::DOCKER_LAYER,
        (Flavor::Docker, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        // Docker itself uses the OCI media type for zstd layers.
        (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
    }
}

// ---------------------------------------------------------------------------------------
// Images

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }
    /// `os/arch[/variant]`
    pub fn spec(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
    fn to_json(&self) -> Value {
        let mut p = json!({"architecture": self.architecture, "os": self.os});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }
}

pub struct ImageBuilder {
    flavor: Flavor,
    platform: Platform,
    layers: Vec<(Layer, Compression)>,
    wrong_diff_ids: Vec<usize>,
    config_extra: Value,
}

impl ImageBuilder {
    /// An image for the host platform (linux/<host arch>).
    pub fn new(flavor: Flavor) -> ImageBuilder {
        let arch = super::host_arch();
        let variant = (arch == "arm64").then_some("v8");
        ImageBuilder {
            flavor,
            platform: Platform::new("linux", arch, variant),
            layers: Vec::new(),
            wrong_diff_ids: Vec::new(),
            config_extra: json!({"Env": [PATH_ENV], "Cmd": ["/bin/sh"]}),
        }
    }

    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> ImageBuilder {
        self.platform = Platform::new(os, arch, variant);
        self
    }

    pub fn layer(mut self, layer: Layer, c: Compression) -> ImageBuilder {
        self.layers.push((layer, c));
        self
    }

    /// Shorthand: a layer from entries.
    pub fn entries(self, entries: &[Entry], c: Compression) -> ImageBuilder {
        self.layer(Layer::from_entries(entries), c)
    }

    /// Write a wrong diff_id for layer `i` into the config.
    pub fn wrong_diff_id(mut self, i: usize) -> ImageBuilder {
        self.wrong_diff_ids.push(i);
        self
    }

    /// Replace the image config's `config` object (Env, Cmd, ...).
    pub fn container_config(mut self, cfg: Value) -> ImageBuilder {
        self.config_extra = cfg;
        self
    }

    pub fn build(self) -> Image {
        assert!(!self.layers.is_empty(), "an image needs at least one layer");
        let layers: Vec<BlobLayer> = self
            .layers
            .iter()
            .map(|(l, c)| {
                let blob = l.blob(*c);
                BlobLayer {
                    digest: sha256_digest(&blob),
                    blob,
                    media_type: layer_media_type(self.flavor, *c).to_string(),
                    compression: *c,
                    diff_id: l.diff_id(),
                }
            })
            .collect();
        let config_diff_ids: Vec<String> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if self.wrong_diff_ids.contains(&i) {
                    // A well-formed digest that is not the layer's.
                    sha256_digest(format!("not the diff_id of layer {i}").as_bytes())
                } else {
                    l.diff_id.clone()
                }
            })
            .collect();
        let history: Vec<Value> = (0..layers.len())
            .map(|i| json!({"created": CREATED, "created_by": format!("strata test layer {i}")}))
            .collect();
        let mut config = self.platform.to_json();
        config["created"] = json!(CREATED);
        config["config"] = self.config_extra.clone();
        config["rootfs"] = json!({"type": "layers", "diff_ids": config_diff_ids});
        config["history"] = json!(history);
        let config = serde_json::to_vec(&config).expect("serialise config");
        let config_digest = sha256_digest(&config);

        let (manifest_type, config_type) = match self.flavor {
            Flavor::Oci => (media::OCI_MANIFEST, media::OCI_CONFIG),
            Flavor::Docker => (media::DOCKER_MANIFEST, media::DOCKER_CONFIG),
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec_pretty(&manifest).expect("serialise manifest");
        Image {
            manifest_digest: sha256_digest(&manifest),
            manifest,
            media_type: manifest_type,
            config_digest,
            config,
            config_diff_ids,
            layers,
            platform: self.platform,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: &'static str,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// The diff_ids written in the config (wrong ones included).
    pub config_diff_ids: Vec<String>,
    pub layers: Vec<BlobLayer>,
    pub platform: Platform,
}

impl Image {
    /// The real diff_ids of the layers.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
    /// The chain IDs computed from the config's diff_ids (what the store keys layers by).
    pub fn chain_ids(&self) -> Vec<String> {
        super::chain_ids(&self.config_diff_ids)
    }
}

/// A multi-platform index (OCI) or manifest list (Docker).
#[derive(Clone, Debug)]
pub struct Index {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: &'static str,
    pub images: Vec<Image>,
}

impl Index {
    pub fn new(flavor: Flavor, images: Vec<Image>) -> Index {
        let media_type = match flavor {
            Flavor::Oci => media::OCI_INDEX,
            Flavor::Docker => media::DOCKER_LIST,
        };
        let manifests: Vec<Value> = images
            .iter()
            .map(|img| {
                json!({
                    "mediaType": img.media_type,
                    "digest": img.manifest_digest,
                    "size": img.manifest.len(),
                    "platform": img.platform.to_json(),
                })
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        }))
        .expect("serialise index");
        Index {
            digest: sha256_digest(&bytes),
            bytes,
            media_type,
            images,
        }
    }

    pub fn image_for(&self, arch: &str) -> &Image {
        self.images
            .iter()
            .find(|i| i.platform.architecture == arch)
            .unwrap_or_else(|| panic!("no {arch} image in the index"))
    }
}

/// The (architecture, variant) of an Alpine architecture name.
pub fn alpine_platform(alpine_arch: &str) -> (&'static str, Option<&'static str>) {
    match alpine_arch {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        other => panic!("no Alpine test tarball for {other}"),
    }
}

/// The Alpine 3.20.3 minirootfs as a single-layer image (the `.tar.gz` as the gzip blob).
pub fn alpine(flavor: Flavor, alpine_arch: &str) -> Image {
    let (arch, variant) = alpine_platform(alpine_arch);
    ImageBuilder::new(flavor)
        .platform("linux", arch, variant)
        .layer(
            Layer::from_tar_gz(&super::alpine_tarball(alpine_arch)),
            Compression::Gzip,
        )
        .build()
}

/// A two-platform (amd64 + arm64/v8) Alpine index or manifest list.
pub fn alpine_multi(flavor: Flavor) -> Index {
    Index::new(
        flavor,
        vec![alpine(flavor, "x86_64"), alpine(flavor, "aarch64")],
    )
}

/// An image of `n` small layers (no base): layer `i` adds `layers/f{i:03}` (content
/// `file {i}\n`) and rewrites the shared file `shared` (content `layer {i}\n`), so the top
/// layer's `shared` must win. Compressions cycle through gzip, zstd and none.
pub fn numbered_layers(flavor: Flavor, n: usize) -> Image {
    let compressions = [Compression::Gzip, Compression::Zstd, Compression::None];
    let mut b = ImageBuilder::new(flavor);
    for i in 0..n {
        b = b.entries(
            &[
                Entry::dir("layers"),
                Entry::file(&format!("layers/f{i:03}"), format!("file {i}\n")),
                Entry::file("shared", format!("layer {i}\n")),
            ],
            compressions[i % compressions.len()],
        );
    }
    b.build()
}

/// A copy of a gzip blob with a different MTIME field in its header: still valid gzip of the
/// same tar (same diff_id, same length), but a different digest.
pub fn gzip_with_other_mtime(gz: &[u8]) -> Vec<u8> {
    assert!(gz.len() > 10 && gz[0] == 0x1f && gz[1] == 0x8b, "not gzip");
    let mut out = gz.to_vec();
    for b in &mut out[4..8] {
        *b ^= 0x5a;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pushing

pub struct Pusher {
    client: reqwest::blocking::Client,
    base: String,
}

impl Pusher {
    pub fn new(registry: &Registry) -> Pusher {
        // reqwest is built with `rustls-no-provider`: it needs a process-wide provider even
        // for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("build HTTP client");
        Pusher {
            client,
            base: registry.url(),
        }
    }

    /// Monolithic upload: POST an upload session, PUT the bytes with `?digest=`.
    pub fn blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let head = self
            .client
            .head(format!("{}/v2/{repo}/blobs/{digest}", self.base))
            .send()
            .expect("HEAD blob");
        if head.status().is_success() {
            return digest;
        }
        let resp = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .expect("POST blob upload");
        assert_eq!(resp.status().as_u16(), 202, "start upload: {resp:?}");
        let location = resp
            .headers()
            .get("location")
            .expect("upload Location header")
            .to_str()
            .expect("Location is ASCII")
            .to_string();
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(&digest);
        let resp = self
            .client
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .expect("PUT blob");
        let status = resp.status();
        assert_eq!(
            status.as_u16(),
            201,
            "upload of {digest} failed: {}",
            resp.text().unwrap_or_default()
        );
        digest
    }

    pub fn manifest(&self, repo: &str, reference: &str, bytes: &[u8], media_type: &str) {
        let resp = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .expect("PUT manifest");
        let status = resp.status();
        assert_eq!(
            status.as_u16(),
            201,
            "PUT manifest {repo}:{reference} failed: {}",
            resp.text().unwrap_or_default()
        );
    }

    /// Push blobs, config and manifest; tag it when `tag` is given (always also by digest).
    pub fn image(&self, repo: &str, tag: Option<&str>, img: &Image) {
        for l in &img.layers {
            self.blob(repo, &l.blob);
        }
        self.blob(repo, &img.config);
        self.manifest(repo, &img.manifest_digest, &img.manifest, img.media_type);
        if let Some(tag) = tag {
            self.manifest(repo, tag, &img.manifest, img.media_type);
        }
    }

    /// Push every image of the index by digest, then the index under `tag`.
    pub fn index(&self, repo: &str, tag: &str, idx: &Index) {
        for img in &idx.images {
            self.image(repo, None, img);
        }
        self.manifest(repo, &idx.digest, &idx.bytes, idx.media_type);
        self.manifest(repo, tag, &idx.bytes, idx.media_type);
    }

    /// GET a manifest as the registry serves it (to check a push).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> (u16, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header(
                "accept",
                [
                    media::OCI_INDEX,
                    media::OCI_MANIFEST,
                    media::DOCKER_LIST,
                    media::DOCKER_MANIFEST,
                ]
                .join(", "),
            )
            .send()
            .expect("GET manifest");
        let status = resp.status().as_u16();
        (status, resp.bytes().expect("manifest body").to_vec())
    }

    /// GET a blob as the registry serves it.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .client
            .get(format!("{}/v2/{repo}/blobs/{digest}", self.base))
            .send()
            .expect("GET blob");
        assert!(resp.status().is_success(), "GET blob {digest}: {resp:?}");
        resp.bytes().expect("blob body").to_vec()
    }
}

/// The hex part of a `sha256:<hex>` digest.
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

// ---------------------------------------------------------------------------------------
// Raw tar: headers written byte by byte, for archives the tar crate's Builder refuses (`..`
// names, empty names, NUL bytes, sizes that lie) and for exact header formats.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// The magic/version a header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFormat {
    /// POSIX ustar: `ustar\0` `00`, with a 155-byte name prefix.
    Ustar,
    /// GNU: `ustar ` ` \0` (no prefix field; long names as `L`/`K` members).
    Gnu,
    /// Pre-POSIX (v7): no magic at all.
    V7,
}

/// One tar header, every field settable. Numeric fields that do not fit their octal field
/// are written in GNU base-256 (negative mtimes too).
#[derive(Clone, Debug)]
pub struct RawHeader {
    pub format: HeaderFormat,
    /// At most 100 bytes (no NUL needed when exactly 100).
    pub name: Vec<u8>,
    /// ustar prefix, at most 155 bytes (ignored for GNU and v7 headers).
    pub prefix: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    /// At most 100 bytes.
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
}

impl RawHeader {
    /// A ustar header of type `typeflag` (`b'0'` file, `b'5'` dir, `b'2'` symlink, `b'1'`
    /// hardlink, `b'3'`/`b'4'` devices, `b'6'` fifo, ...), size 0, mode 0644 (0755 for
    /// directories), owner 0:0, mtime [`DEFAULT_MTIME`].
    pub fn new(typeflag: u8, name: impl AsRef<[u8]>) -> RawHeader {
        RawHeader {
            format: HeaderFormat::Ustar,
            name: name.as_ref().to_vec(),
            prefix: Vec::new(),
            typeflag,
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: DEFAULT_MTIME as i64,
            linkname: Vec::new(),
            uname: Vec::new(),
            gname: Vec::new(),
            devmajor: 0,
            devminor: 0,
        }
    }
    pub fn link(mut self, target: impl AsRef<[u8]>) -> RawHeader {
        self.linkname = target.as_ref().to_vec();
        self
    }
    pub fn size(mut self, size: u64) -> RawHeader {
        self.size = size;
        self
    }
    pub fn mode(mut self, mode: u32) -> RawHeader {
        self.mode = mode;
        self
    }
    pub fn format(mut self, format: HeaderFormat) -> RawHeader {
        self.format = format;
        self
    }
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> RawHeader {
        self.prefix = prefix.as_ref().to_vec();
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> RawHeader {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: i64) -> RawHeader {
        self.mtime = mtime;
        self
    }
    pub fn device(mut self, major: u32, minor: u32) -> RawHeader {
        self.devmajor = major;
        self.devminor = minor;
        self
    }

    /// The 512-byte header block, checksum set.
    pub fn to_block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b[0..100], &self.name, "name");
        numeric_field(&mut b[100..108], i128::from(self.mode));
        numeric_field(&mut b[108..116], i128::from(self.uid));
        numeric_field(&mut b[116..124], i128::from(self.gid));
        numeric_field(&mut b[124..136], i128::from(self.size));
        numeric_field(&mut b[136..148], i128::from(self.mtime));
        b[156] = self.typeflag;
        put_bytes(&mut b[157..257], &self.linkname, "linkname");
        match self.format {
            HeaderFormat::Ustar => {
                b[257..263].copy_from_slice(b"ustar\0");
                b[263..265].copy_from_slice(b"00");
                put_bytes(&mut b[345..500], &self.prefix, "prefix");
            }
            HeaderFormat::Gnu => {
                b[257..263].copy_from_slice(b"ustar ");
                b[263..265].copy_from_slice(b" \0");
            }
            HeaderFormat::V7 => {}
        }
        if self.format != HeaderFormat::V7 {
            put_bytes(&mut b[265..297], &self.uname, "uname");
            put_bytes(&mut b[297..329], &self.gname, "gname");
            numeric_field(&mut b[329..337], i128::from(self.devmajor));
            numeric_field(&mut b[337..345], i128::from(self.devminor));
        }
        set_checksum(&mut b);
        b
    }
}

fn put_bytes(field: &mut [u8], value: &[u8], what: &str) {
    assert!(
        value.len() <= field.len(),
        "{what} of {} bytes does not fit a {}-byte field",
        value.len(),
        field.len()
    );
    field[..value.len()].copy_from_slice(value);
}

/// Writes `v` into a numeric header field: zero-padded octal and a NUL when it fits, else GNU
/// base-256 (two's complement, first byte 0x80 or 0xff).
pub fn numeric_field(field: &mut [u8], v: i128) {
    let digits = field.len() - 1;
    if v >= 0 && v < 8i128.pow(digits as u32) {
        let s = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
        return;
    }
    let bytes = v.to_be_bytes();
    let n = field.len();
    field.copy_from_slice(&bytes[bytes.len() - n..]);
    if v >= 0 {
        assert_eq!(field[0] & 0x80, 0, "value {v} too large for base-256");
        field[0] |= 0x80;
    } else {
        assert_eq!(field[0], 0xff, "value {v} too small for base-256");
    }
}

/// Sets the checksum field (148..156) of a header block: the sum of all bytes with the field
/// read as spaces, as six octal digits, NUL, space.
pub fn set_checksum(block: &mut [u8]) {
    assert_eq!(block.len(), BLOCK, "a header is one block");
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// One PAX extended-header record: `"<len> <key>=<value>\n"`, `len` counting itself.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len);
    r
}

/// A tar stream assembled block by block.
#[derive(Clone, Debug, Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }
    /// A header block, as given (use [`set_checksum`] after editing one by hand).
    pub fn block(&mut self, block: &[u8; BLOCK]) -> &mut RawTar {
        self.bytes.extend_from_slice(block);
        self
    }
    /// A header.
    pub fn header(&mut self, h: &RawHeader) -> &mut RawTar {
        self.block(&h.to_block())
    }
    /// Member data, zero-padded to a block boundary.
    pub fn data(&mut self, data: &[u8]) -> &mut RawTar {
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }
    /// Bytes as they are (no padding).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut RawTar {
        self.bytes.extend_from_slice(bytes);
        self
    }
    /// Zero bytes up to the next block boundary.
    pub fn pad(&mut self) -> &mut RawTar {
        let rem = self.bytes.len() % BLOCK;
        if rem != 0 {
            self.bytes.resize(self.bytes.len() + BLOCK - rem, 0);
        }
        self
    }
    /// A header whose size is `data.len()`, then the data.
    pub fn member(&mut self, h: RawHeader, data: &[u8]) -> &mut RawTar {
        self.header(&h.size(data.len() as u64)).data(data)
    }
    pub fn file(&mut self, name: impl AsRef<[u8]>, data: &[u8]) -> &mut RawTar {
        self.member(RawHeader::new(b'0', name), data)
    }
    pub fn dir(&mut self, name: impl AsRef<[u8]>) -> &mut RawTar {
        self.member(RawHeader::new(b'5', name), &[])
    }
    pub fn symlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut RawTar {
        self.member(RawHeader::new(b'2', name).link(target).mode(0o777), &[])
    }
    pub fn hardlink(&mut self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> &mut RawTar {
        self.member(RawHeader::new(b'1', name).link(target), &[])
    }
    /// A PAX extended header (`x`) applying to the next member.
    pub fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut RawTar {
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.member(RawHeader::new(b'x', "PaxHeaders.0/entry"), &data)
    }
    /// A GNU long name (`L`) for the next member.
    pub fn gnu_long_name(&mut self, name: impl AsRef<[u8]>) -> &mut RawTar {
        let mut data = name.as_ref().to_vec();
        data.push(0);
        self.member(
            RawHeader::new(b'L', "././@LongLink").format(HeaderFormat::Gnu),
            &data,
        )
    }
    /// A GNU long link target (`K`) for the next member.
    pub fn gnu_long_link(&mut self, target: impl AsRef<[u8]>) -> &mut RawTar {
        let mut data = target.as_ref().to_vec();
        data.push(0);
        self.member(
            RawHeader::new(b'K', "././@LongLink").format(HeaderFormat::Gnu),
            &data,
        )
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The stream with the end-of-archive marker (two zero blocks).
    pub fn finish(&self) -> Vec<u8> {
        let mut v = self.bytes.clone();
        v.resize(v.len() + 2 * BLOCK, 0);
        v
    }
    /// The stream without an end-of-archive marker.
    pub fn unterminated(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}
