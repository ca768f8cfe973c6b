#!/usr/bin/env python3
"""Write an OCI image layout from layer tars and their compressed blobs.

usage: oci-layout.py LAYOUT gzip|zstd LAYER.tar...
For each LAYER.tar, LAYER.tar.gz (or .tar.zst) must exist next to it; the diff_id (sha256 of the
tar) is cached in LAYER.tar.sha256. Blobs are hard-linked into LAYOUT/blobs/sha256. The index
names the manifest with org.opencontainers.image.ref.name = the compression (the tag).
"""
import hashlib, json, os, shutil, sys


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def cached_sha(path):
    side = path + ".sha256"
    if os.path.exists(side) and os.path.getmtime(side) >= os.path.getmtime(path):
        return open(side).read().strip()
    d = sha256_file(path)
    with open(side, "w") as f:
        f.write(d + "\n")
    return d


def put_blob(layout, data=None, path=None):
    if path is not None:
        hexd = cached_sha(path)
        size = os.path.getsize(path)
        dst = os.path.join(layout, "blobs/sha256", hexd)
        if not os.path.exists(dst):
            try:
                os.link(path, dst)
            except OSError:
                shutil.copyfile(path, dst)
    else:
        hexd = hashlib.sha256(data).hexdigest()
        size = len(data)
        with open(os.path.join(layout, "blobs/sha256", hexd), "wb") as f:
            f.write(data)
    return "sha256:" + hexd, size


def main():
    layout, comp, tars = sys.argv[1], sys.argv[2], sys.argv[3:]
    ext, mt = {"gzip": (".gz", "application/vnd.oci.image.layer.v1.tar+gzip"),
               "zstd": (".zst", "application/vnd.oci.image.layer.v1.tar+zstd")}[comp]
    os.makedirs(os.path.join(layout, "blobs/sha256"), exist_ok=True)
    layers, diff_ids, history = [], [], []
    for t in tars:
        diff_ids.append("sha256:" + cached_sha(t))
        dgst, size = put_blob(layout, path=t + ext)
        layers.append({"mediaType": mt, "digest": dgst, "size": size})
        history.append({"created": "2025-05-20T00:00:00Z",
                        "created_by": "strata bench: " + os.path.basename(t)})
    config = {
        "created": "2025-05-20T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cdig, csize = put_blob(layout, data=json.dumps(config, separators=(",", ":")).encode())
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cdig, "size": csize},
                "layers": layers}
    mdig, msize = put_blob(layout, data=json.dumps(manifest, separators=(",", ":")).encode())
    index = {"schemaVersion": 2,
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": mdig, "size": msize,
                            "annotations": {"org.opencontainers.image.ref.name": comp}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    total_c = sum(l["size"] for l in layers)
    total_u = sum(os.path.getsize(t) for t in tars)
    with open(os.path.join(layout, "summary.json"), "w") as f:
        json.dump({"layers": len(layers), "compressed": total_c, "uncompressed_tar": total_u,
                   "manifest": mdig}, f)


if __name__ == "__main__":
    main()
