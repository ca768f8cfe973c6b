//! `commit`: a container's writable layer becomes a new layer of a new image (`docker commit`).
//!
//! 1. Under the shared store lease (held to the end, as a pull holds it), the upper dir is
//!    written as a layer tar ([`layer_tar`], confined: whiteouts back to `.wh.NAME`, opaque
//!    directories to `.wh..wh..opq`, hard links, xattrs except overlay's, devices, owners,
//!    modes, mtimes; the init layer's files and sockets left out) into an unnamed temporary file (`O_TMPFILE`) in the store's
//!    `staging/`, hashed on the way: its sha256 is the layer's diff_id. Memory stays bounded
//!    and a kill leaves no file.
//! 2. The same tar is applied by the pull's [`StoreSink`] (staging, verify, sync, rename): the
//!    layer is byte for byte what a pull of that tar gives, named by the chain ID of the
//!    parent's chain and the diff_id. Its bytes are hashed again while applied and checked
//!    against the diff_id.
//! 3. The config is the parent's with `created`, `rootfs.diff_ids` + the new diff_id, a
//!    `history` entry (created, created_by, author, comment) and the `--change` instructions
//!    applied; the image id is its sha256. The manifest is the parent's with the config and one
//!    more layer, uncompressed (the blob digest is the diff_id: the store keeps no blobs, and
//!    `export` writes layers back from their directories). The image has no repo digest (it
//!    was never pushed), as with Docker.
//! 4. The image record is written, then the tag when one is given (else it is dangling).
//!
//! A container that is running is committed without pausing it (strata does not pause): what
//! it writes meanwhile may or may not be in the layer. Commit a stopped container for a
//! consistent layer.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags};
use serde_json::{Map, Value, json};

use crate::archive::ApplyOptions;
use crate::archive::layer_tar::{self, LayerTarError};
use crate::container::{Container, diff};
use crate::digest::{Digest, Hasher};
use crate::id::{BlobDigest, ChainId, DiffId, ImageId};
use crate::image::media_type::{DOCKER_LAYER_TAR, DOCKER_MANIFEST, OCI_LAYER_TAR};
use crate::image::{Compression, Descriptor};
use crate::pipeline::LayerError;
use crate::reference::Reference;
use crate::sink::{Begun, LayerJob, LayerSink, StoreSink};
use crate::store::{ImageRecord, LayerRef, LeaseKind, StoreError, now_rfc3339};

/// What to commit, and how.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The image's author (`--author`).
    pub author: Option<String>,
    /// Dockerfile instructions applied to the config (`-c 'ENV X=1'`): `ENV`, `CMD`,
    /// `ENTRYPOINT`, `WORKDIR`, `USER`, `LABEL`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`.
    pub changes: Vec<String>,
    /// The reference to tag the image with; `None` leaves it dangling.
    pub tag: Option<Reference>,
    /// One `syncfs` before the layer becomes visible (else marked unsynced, as a pull).
    pub sync: bool,
    /// Set (by a signal handler, or by dropping the caller's future) to stop early: nothing
    /// is then recorded but, at worst, an unused layer that the next prune removes.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// What a commit made.
#[derive(Debug, Clone)]
pub struct CommitOutcome {
    /// The new image.
    pub image: ImageRecord,
    /// The reference it is tagged with (`repo:tag`), if any.
    pub tagged: Option<String>,
}

/// Why a commit failed. Nothing is recorded then (at worst an unused layer).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container's image was removed (`rmi -f`): its config is gone.
    #[error("container {container}: its image {image} was removed; nothing to extend")]
    ImageGone {
        /// The container's name.
        container: String,
        /// The image id.
        image: ImageId,
    },
    /// Writing the writable layer as a tar failed.
    #[error("container {container}: writing its layer as a tar: {source}")]
    Tar {
        /// The container's name.
        container: String,
        /// What failed.
        source: LayerTarError,
    },
    /// Storing the layer failed.
    #[error("container {container}: storing its layer: {source}")]
    Layer {
        /// The container's name.
        container: String,
        /// What failed.
        source: Box<LayerError>,
    },
    /// The temporary tar file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The stored parent config or manifest is not what the store wrote.
    #[error("image {image}: stored {what} is not valid JSON: {reason}")]
    Parent {
        /// The parent image.
        image: ImageId,
        /// `config` or `manifest`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A `--change` instruction is not understood.
    #[error("invalid change {change:?}: {reason}")]
    Change {
        /// The instruction.
        change: String,
        /// Why.
        reason: String,
    },
    /// A tag with a digest was asked for.
    #[error("refusing to create a tag with a digest reference: {0}")]
    DigestTag(String),
    /// The commit was cancelled ([`CommitOptions::cancel`]).
    #[error("commit interrupted")]
    Interrupted,
}

/// Commits `container` (see the module documentation).
pub fn commit(
    container: &Container,
    options: &CommitOptions,
) -> Result<CommitOutcome, CommitError> {
    if let Some(tag) = &options.tag
        && tag.digest.is_some()
    {
        return Err(CommitError::DigestTag(tag.to_string()));
    }
    // Refused before any work: a bad instruction must not leave a layer.
    for change in &options.changes {
        apply_change(&mut Map::new(), change)?;
    }
    let store = container.store();
    let name = container.name().to_string();
    store.recover(options.sync)?;
    let _lease = store.lease(LeaseKind::Shared)?;
    let record = container.record();
    let parent = store
        .image(&record.image_id)?
        .ok_or_else(|| CommitError::ImageGone {
            container: name.clone(),
            image: record.image_id.clone(),
        })?;
    let cancel = options.cancel.clone().unwrap_or_default();
    let upper = store.container_dirs(record)?.upper;

    // 1. The tar, hashed while written.
    let staging = store.staging_dir();
    let io_err = |op, source| CommitError::Io {
        op,
        path: staging.clone(),
        source,
    };
    let fd = rustix::fs::open(
        &staging,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| io_err("creating a temporary file (O_TMPFILE) in", e.into()))?;
    let mut out = Hashing {
        inner: BufWriter::new(File::from(fd)),
        hasher: Hasher::new(),
        cancel: &cancel,
    };
    let written = layer_tar::write(
        &upper,
        &mut out,
        &layer_tar::Options {
            root_entry: false,
            skip: diff::HIDDEN_PATHS,
        },
    );
    if cancel.load(Ordering::SeqCst) {
        return Err(CommitError::Interrupted);
    }
    written.map_err(|source| CommitError::Tar {
        container: name.clone(),
        source,
    })?;
    let Hashing { inner, hasher, .. } = out;
    let mut file = inner
        .into_inner()
        .map_err(|e| io_err("writing a temporary file in", e.into_error()))?;
    let tar_size = hasher.len();
    let diff_id = DiffId::new(hasher.finish());

    // 2. The layer, through the pull's sink.
    let mut diff_ids: Vec<DiffId> = parent.layers.iter().map(|l| l.diff_id.clone()).collect();
    diff_ids.push(diff_id.clone());
    // The parent's chain, nearest first, then the new layer's own chain ID.
    let mut ancestors = ChainId::of_stack(&diff_ids);
    let chain_id = ancestors.pop().ok_or_else(|| CommitError::Parent {
        image: parent.id.clone(),
        what: "config",
        reason: "no layers".into(),
    })?;
    ancestors.reverse();
    let manifest_bytes = store.image_manifest(&parent.id)?;
    let manifest: Value = parse_json(&parent.id, "manifest", &manifest_bytes)?;
    let layer_media_type = if manifest_media_type(&parent, &manifest) == DOCKER_MANIFEST {
        DOCKER_LAYER_TAR
    } else {
        OCI_LAYER_TAR
    };
    let blob = Descriptor {
        media_type: layer_media_type.to_string(),
        digest: diff_id.digest().clone(),
        size: tar_size,
        platform: None,
        urls: None,
        annotations: None,
    };
    let job = LayerJob {
        blob: blob.clone(),
        compression: Compression::None,
        diff_id: diff_id.clone(),
        chain_id: chain_id.clone(),
        ancestors,
    };
    let layer_err = |source: LayerError| CommitError::Layer {
        container: name.clone(),
        source: Box::new(source),
    };
    let apply = ApplyOptions {
        same_owner: true,
        ..ApplyOptions::default()
    };
    let sink = StoreSink::new(store.clone(), &apply, options.sync);
    let layer = match sink.begin(&job).map_err(layer_err)? {
        Begun::Present(layer) => layer,
        Begun::Write(mut pending) => {
            file.rewind()
                .map_err(|e| io_err("rewinding a temporary file in", e))?;
            let mut reader = Checked {
                inner: io::BufReader::new(&mut file),
                hasher: Hasher::new(),
                cancel: &cancel,
            };
            let applied = sink.apply(&mut pending, &mut reader);
            if cancel.load(Ordering::SeqCst) {
                return Err(CommitError::Interrupted);
            }
            let stats = applied.map_err(|e| layer_err(e.into()))?;
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| io_err("reading a temporary file in", e))?;
            let again = reader.hasher.finish();
            again
                .verify(diff_id.digest())
                .map_err(|e| layer_err(LayerError::DiffId(e)))?;
            sink.commit(pending, &job, stats, diff_id.clone())
                .map_err(layer_err)?
        }
    };
    drop(file);
    if cancel.load(Ordering::SeqCst) {
        return Err(CommitError::Interrupted);
    }

    // 3. Config and manifest.
    let config_bytes = store.image_config(&parent.id)?;
    let mut config: Value = parse_json(&parent.id, "config", &config_bytes)?;
    let created = now_rfc3339();
    extend_config(&mut config, options, &diff_id, &created, &name)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| CommitError::Parent {
        image: parent.id.clone(),
        what: "config",
        reason: e.to_string(),
    })?;
    let id = ImageId::new(Digest::of(&config_bytes));
    let manifest = extend_manifest(manifest, &config_bytes, &id, &blob);
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| CommitError::Parent {
        image: parent.id.clone(),
        what: "manifest",
        reason: e.to_string(),
    })?;

    // 4. The record, then the tag.
    let mut layers = parent.layers.clone();
    layers.push(LayerRef {
        chain_id,
        diff_id,
        blob_digest: BlobDigest::new(blob.digest.clone()),
        blob_size: tar_size,
        size: layer.size,
    });
    let image = match store.image(&id)? {
        Some(existing) => existing,
        None => {
            let image = ImageRecord {
                id: id.clone(),
                manifest_digest: Digest::of(&manifest_bytes),
                manifest_media_type: manifest_media_type(&parent, &manifest).to_string(),
                platform: parent.platform.clone(),
                layers,
                repo_digests: vec![],
                pulled_at: created,
            };
            store.put_image(&image, &manifest_bytes, &config_bytes)?;
            image
        }
    };
    let tagged = match &options.tag {
        Some(tag) => {
            let key = format!("{}:{}", tag.repo_name(), tag.tag_or_default());
            store.tag(&key, &id)?;
            Some(key)
        }
        None => None,
    };
    tracing::info!("committed container {name} as image {id}");
    Ok(CommitOutcome { image, tagged })
}

fn parse_json(image: &ImageId, what: &'static str, bytes: &[u8]) -> Result<Value, CommitError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| CommitError::Parent {
        image: image.clone(),
        what,
        reason: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(CommitError::Parent {
            image: image.clone(),
            what,
            reason: "not a JSON object".into(),
        });
    }
    Ok(value)
}

/// The manifest's media type: its own field, else the record's.
fn manifest_media_type<'a>(parent: &'a ImageRecord, manifest: &'a Value) -> &'a str {
    manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(&parent.manifest_media_type)
}

/// The parent's config with the new layer, the history entry and the changes.
fn extend_config(
    config: &mut Value,
    options: &CommitOptions,
    diff_id: &DiffId,
    created: &str,
    container: &str,
) -> Result<(), CommitError> {
    let Some(top) = config.as_object_mut() else {
        return Ok(());
    };
    top.insert("created".into(), json!(created));
    if let Some(author) = &options.author {
        top.insert("author".into(), json!(author));
    }
    let rootfs = object_at(top, "rootfs");
    rootfs.insert("type".into(), json!("layers"));
    array_at(rootfs, "diff_ids").push(json!(diff_id.to_string()));
    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    entry.insert(
        "created_by".into(),
        json!(format!("strata commit {container}")),
    );
    if let Some(author) = &options.author {
        entry.insert("author".into(), json!(author));
    }
    if let Some(message) = &options.message {
        entry.insert("comment".into(), json!(message));
    }
    array_at(top, "history").push(Value::Object(entry));
    let runtime = object_at(top, "config");
    for change in &options.changes {
        apply_change(runtime, change)?;
    }
    Ok(())
}

/// The parent's manifest with the new config and one more layer.
fn extend_manifest(mut manifest: Value, config: &[u8], id: &ImageId, layer: &Descriptor) -> Value {
    if let Some(top) = manifest.as_object_mut() {
        let config_desc = object_at(top, "config");
        config_desc.insert("digest".into(), json!(id.to_string()));
        config_desc.insert("size".into(), json!(config.len()));
        array_at(top, "layers").push(json!({
            "mediaType": layer.media_type,
            "size": layer.size,
            "digest": layer.digest.to_string(),
        }));
    }
    manifest
}

/// `map[key]` as an object, made one if it is missing or not an object.
fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(inner) => inner,
        _ => unreachable!("made an object above"),
    }
}

/// `map[key]` as an array, made one if it is missing or not an array.
fn array_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(inner) => inner,
        _ => unreachable!("made an array above"),
    }
}

/// Applies one Dockerfile instruction to the runtime config (`Env`, `Cmd`, ...), as
/// `docker commit --change` does.
fn apply_change(runtime: &mut Map<String, Value>, change: &str) -> Result<(), CommitError> {
    let bad = |reason: &str| CommitError::Change {
        change: change.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = change.trim();
    let (instruction, rest) = trimmed
        .split_once(char::is_whitespace)
        .map(|(i, r)| (i, r.trim()))
        .unwrap_or((trimmed, ""));
    if rest.is_empty() {
        return Err(bad("missing arguments"));
    }
    match instruction.to_ascii_uppercase().as_str() {
        "ENV" => {
            let env = array_at(runtime, "Env");
            for (key, value) in pairs(rest).map_err(|r| bad(&r))? {
                let prefix = format!("{key}=");
                env.retain(|v| !v.as_str().is_some_and(|s| s.starts_with(&prefix)));
                env.push(json!(format!("{key}={value}")));
            }
        }
        "LABEL" => {
            let labels = object_at(runtime, "Labels");
            for (key, value) in pairs(rest).map_err(|r| bad(&r))? {
                labels.insert(key, json!(value));
            }
        }
        "CMD" => {
            runtime.insert("Cmd".into(), json!(command(rest)));
        }
        "ENTRYPOINT" => {
            runtime.insert("Entrypoint".into(), json!(command(rest)));
        }
        "WORKDIR" => {
            runtime.insert("WorkingDir".into(), json!(rest));
        }
        "USER" => {
            runtime.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            runtime.insert("StopSignal".into(), json!(rest));
        }
        "EXPOSE" => {
            let ports = object_at(runtime, "ExposedPorts");
            for port in rest.split_whitespace() {
                let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
                if number.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(bad("a port is NUMBER[/tcp|udp|sctp]"));
                }
                ports.insert(format!("{number}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let volumes = object_at(runtime, "Volumes");
            let paths = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(list) => list,
                Err(_) => rest.split_whitespace().map(str::to_string).collect(),
            };
            for path in paths {
                volumes.insert(path, json!({}));
            }
        }
        _ => {
            return Err(bad(
                "supported: ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL",
            ));
        }
    }
    Ok(())
}

/// A JSON array (exec form), else `/bin/sh -c TEXT` (shell form), as a Dockerfile.
fn command(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(list) => list,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.into()],
    }
}

/// `KEY=VALUE ...` (values may be double-quoted), or the old `KEY VALUE` form.
fn pairs(rest: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest)?;
    if words.first().is_some_and(|w| !w.contains('=')) {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(key.to_string(), unquote(value.trim()))]);
    }
    words
        .iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("{w:?} is not KEY=VALUE"))?;
            if k.is_empty() {
                return Err(format!("{w:?} has no key"));
            }
            Ok((k.to_string(), unquote(v)))
        })
        .collect()
}

/// Whitespace-separated words, double-quoted parts kept whole (quotes kept, see [`unquote`]).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

fn unquote(value: &str) -> String {
    value.replace('"', "")
}

/// A writer that hashes what it passes on and stops when cancelled.
struct Hashing<'a, W: Write> {
    inner: W,
    hasher: Hasher,
    cancel: &'a AtomicBool,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("interrupted"));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads and stops when cancelled.
struct Checked<'a, R: Read> {
    inner: R,
    hasher: Hasher,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> Value {
        let mut runtime = Map::new();
        runtime.insert("Env".into(), json!(["PATH=/bin", "X=0"]));
        for c in changes {
            apply_change(&mut runtime, c).unwrap();
        }
        Value::Object(runtime)
    }

    #[test]
    fn changes_as_docker_commit() {
        let v = changed(&[
            "ENV X=1 Y=\"a b\"",
            "ENV Z 3 4",
            "CMD [\"cat\", \"/f\"]",
            "ENTRYPOINT echo hi",
            "WORKDIR /w",
            "USER nobody",
            "LABEL a=b",
            "EXPOSE 80 53/udp",
        ]);
        assert_eq!(v["Env"], json!(["PATH=/bin", "X=1", "Y=a b", "Z=3 4"]));
        assert_eq!(v["Cmd"], json!(["cat", "/f"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(v["WorkingDir"], json!("/w"));
        assert_eq!(v["User"], json!("nobody"));
        assert_eq!(v["Labels"], json!({"a": "b"}));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
    }

    #[test]
    fn bad_changes_are_refused() {
        for c in ["FROM alpine", "ENV", "EXPOSE http", "ENV =1", "LABEL a=\"b"] {
            assert!(
                apply_change(&mut Map::new(), c).is_err(),
                "{c} was accepted"
            );
        }
    }

    #[test]
    fn config_gets_layer_and_history() {
        let mut config = json!({"architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}, "history": [{"created_by": "x"}], "config": {}});
        let diff_id = DiffId::new(Digest::of(b"tar"));
        let options = CommitOptions {
            message: Some("msg".into()),
            author: Some("me".into()),
            changes: vec!["ENV A=1".into()],
            ..CommitOptions::default()
        };
        extend_config(&mut config, &options, &diff_id, "2026-01-01T00:00:00Z", "c").unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][1], json!(diff_id.to_string()));
        assert_eq!(config["history"][1]["comment"], json!("msg"));
        assert_eq!(config["history"][1]["author"], json!("me"));
        assert_eq!(config["config"]["Env"], json!(["A=1"]));
        assert_eq!(config["architecture"], json!("amd64"));
    }
}
