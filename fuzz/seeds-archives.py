#!/usr/bin/env python3
"""Writes the seed corpora of the archive and layout targets into seeds/<target>/: a small
image (one layer, a config) as an OCI layout (single image and a two-platform index), as a
`docker save` archive (legacy `<id>/layer.tar` and Docker 25+'s `blobs/sha256/`), and whole
tars of both (ustar, GNU and PAX) for tar_index. Deterministic; rerun after changing it."""

import hashlib
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    """members: (name, bytes) files, (name, None) dirs, (name, ('link', target)) symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(v):
    return json.dumps(v, separators=(",", ":")).encode()


# The NUL-separated seeds need a layer without NUL bytes (resolution does not read layers);
# the tar_index seeds carry a real layer tar.
real_layer = tar_bytes([("etc", None), ("etc/hostname", b"seed\n"), ("etc/.wh.gone", b"")])
layer = b"layer bytes: resolution reads the manifest and config, not the layers\n"
config = js({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]},
})
arm_config = config.replace(b'"amd64"', b'"arm64"')
oci_layout = js({"imageLayoutVersion": "1.0.0"})


def manifest(cfg):
    return js({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + sha(layer), "size": len(layer)}],
    })


def desc(blob, media, extra=None):
    d = {"mediaType": media, "digest": "sha256:" + sha(blob), "size": len(blob)}
    d.update(extra or {})
    return d


amd = manifest(config)
arm = manifest(arm_config)
index_single = js({"schemaVersion": 2, "manifests": [desc(
    amd, "application/vnd.oci.image.manifest.v1+json",
    {"annotations": {"org.opencontainers.image.ref.name": "latest"}})]})
multi = js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                desc(amd, "application/vnd.oci.image.manifest.v1+json",
                     {"platform": {"architecture": "amd64", "os": "linux"}}),
                desc(arm, "application/vnd.oci.image.manifest.v1+json",
                     {"platform": {"architecture": "arm64", "os": "linux"}})]})
index_multi = js({"schemaVersion": 2, "manifests": [desc(
    multi, "application/vnd.oci.image.index.v1+json",
    {"annotations": {"org.opencontainers.image.ref.name": "example.com/app:1"}})]})

# oci_layout: oci-layout, index.json, blobs... (NUL-separated).
write("oci_layout", "single", b"\0".join([oci_layout, index_single, amd, config]))
write("oci_layout", "multi", b"\0".join([oci_layout, index_multi, multi, amd, arm, config]))

# docker_archive: manifest.json, config, layer, repositories.
cfg_hex = sha(config)
legacy = js([{"Config": cfg_hex + ".json", "RepoTags": ["example.com/app:1", "app:latest"],
              "Layers": ["id/layer.tar"]}])
modern = js([{"Config": "blobs/sha256/" + cfg_hex, "RepoTags": ["app:2"],
              "Layers": ["blobs/sha256/" + sha(layer)]},
             {"Config": "config.json", "RepoTags": None, "Layers": ["layer.tar"]}])
repositories = js({"app": {"latest": "id"}})
write("docker_archive", "legacy", b"\0".join([legacy, config, layer, repositories]))
write("docker_archive", "modern", b"\0".join([modern, config, layer, repositories]))

# tar_index: a mode byte (0: as is, 1: checksums fixed up), then a whole archive.
docker_tar = [("manifest.json", legacy), ("repositories", repositories),
              (cfg_hex + ".json", config), ("id", None),
              ("id/layer.tar", ("link", "../" + sha(layer) + ".tar")),
              (sha(layer) + ".tar", layer), ("unused/layer.tar", real_layer)]
oci_tar = [("oci-layout", oci_layout), ("index.json", index_multi), ("blobs", None),
           ("blobs/sha256", None)] + [
    ("blobs/sha256/" + sha(b), b) for b in (multi, amd, arm, config, layer, real_layer)]
for fmt, fname in [(tarfile.USTAR_FORMAT, "ustar"), (tarfile.GNU_FORMAT, "gnu"),
                   (tarfile.PAX_FORMAT, "pax")]:
    write("tar_index", "docker-" + fname, b"\0" + tar_bytes(docker_tar, fmt))
    write("tar_index", "oci-" + fname, b"\1" + tar_bytes(oci_tar, fmt))
