#!/usr/bin/env python3
"""Push COUNT small distinct images to a registry for `bench/run.sh --store-scale`.

usage: scale-images.py REGISTRY REPO COUNT CACHE_DIR

Every image is a shared base layer (a few small files) plus one tiny layer of its own (/id), with
its own config, tagged REPO:i0001 .. REPO:iCOUNT. Blobs, configs and manifests are generated here
(deterministic: tar and gzip with fixed mtimes) and pushed over the registry's HTTP API with one
keep-alive connection: monolithic blob upload (POST .../blobs/uploads/, PUT ?digest=) and
PUT .../manifests/<tag>. CACHE_DIR/pushed records the manifests pushed; when the registry still
has the first and the last of them the push is skipped.
"""
import gzip, hashlib, http.client, io, json, os, sys, tarfile

LAYER_MT = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MT = "application/vnd.oci.image.config.v1+json"
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
# Bump when the generated content changes, so a cache of the old content is not trusted.
VERSION = "1"


def tar_gz(files):
    """(tar bytes, gzip bytes) of {path: bytes}, reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        dirs = set()
        for p in files:
            d = os.path.dirname(p)
            while d:
                dirs.add(d)
                d = os.path.dirname(d)
        dirs = sorted(dirs)
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            t.addfile(ti)
        for p in sorted(files):
            ti = tarfile.TarInfo(p)
            ti.size, ti.mode, ti.mtime = len(files[p]), 0o644, 1700000000
            t.addfile(ti, io.BytesIO(files[p]))
    data = raw.getvalue()
    return data, gzip.compress(data, compresslevel=6, mtime=0)


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    def __init__(self, addr, repo):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.repo = repo

    def req(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        r.read()
        return r

    def has_manifest(self, tag, digest):
        r = self.req("HEAD", "/v2/%s/manifests/%s" % (self.repo, tag), headers={"Accept": MANIFEST_MT})
        return r.status == 200 and r.getheader("Docker-Content-Digest") == digest

    def put_blob(self, data):
        d = sha(data)
        if self.req("HEAD", "/v2/%s/blobs/%s" % (self.repo, d)).status == 200:
            return d
        r = self.req("POST", "/v2/%s/blobs/uploads/" % self.repo, body=b"", headers={"Content-Length": "0"})
        if r.status != 202:
            raise SystemExit("upload start: HTTP %d" % r.status)
        loc = r.getheader("Location")
        if "://" in loc:
            loc = "/" + loc.split("://", 1)[1].split("/", 1)[1]
        loc += ("&" if "?" in loc else "?") + "digest=" + d
        r = self.req("PUT", loc, body=data, headers={"Content-Type": "application/octet-stream",
                                                      "Content-Length": str(len(data))})
        if r.status != 201:
            raise SystemExit("blob upload %s: HTTP %d" % (d, r.status))
        return d

    def put_manifest(self, tag, body):
        r = self.req("PUT", "/v2/%s/manifests/%s" % (self.repo, tag), body=body,
                     headers={"Content-Type": MANIFEST_MT, "Content-Length": str(len(body))})
        if r.status != 201:
            raise SystemExit("manifest %s: HTTP %d" % (tag, r.status))


def image(i, base_tar, base_gz):
    """(manifest bytes, [(blob bytes)]) of image number i."""
    tar, gz = tar_gz({"id": b"%d\n" % i, "etc/hostname": b"scale-%04d\n" % i})
    config = {"created": "2025-05-20T00:%02d:%02dZ" % (i // 60 % 60, i % 60),
              "architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [sha(base_tar), sha(tar)]},
              "history": [{"created_by": "base"}, {"created_by": "image %d" % i}]}
    cfg = json.dumps(config, separators=(",", ":")).encode()
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MT,
                "config": {"mediaType": CONFIG_MT, "digest": sha(cfg), "size": len(cfg)},
                "layers": [{"mediaType": LAYER_MT, "digest": sha(base_gz), "size": len(base_gz)},
                           {"mediaType": LAYER_MT, "digest": sha(gz), "size": len(gz)}]}
    return json.dumps(manifest, separators=(",", ":")).encode(), [gz, cfg]


def main():
    addr, repo, count, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.makedirs(cache, exist_ok=True)
    base_files = {"etc/os-release": b"NAME=strata-scale\n", "bin/.keep": b"",
                  "usr/share/doc/README": b"x" * 4096}
    base_tar, base_gz = tar_gz(base_files)
    manifests = [image(i, base_tar, base_gz) for i in range(1, count + 1)]
    reg = Registry(addr, repo)
    marker = os.path.join(cache, "pushed")
    want = "%s %s %d %s\n" % (VERSION, repo, count, sha(b"".join(m for m, _ in manifests)))
    first, last = sha(manifests[0][0]), sha(manifests[-1][0])
    if (os.path.exists(marker) and open(marker).read() == want
            and reg.has_manifest("i0001", first) and reg.has_manifest("i%04d" % count, last)):
        print("cached: %d images in %s" % (count, repo), file=sys.stderr)
        return
    reg.put_blob(base_gz)
    for i, (m, blobs) in enumerate(manifests, 1):
        for b in blobs:
            reg.put_blob(b)
        reg.put_manifest("i%04d" % i, m)
    with open(marker, "w") as f:
        f.write(want)
    print("pushed %d images to %s" % (count, repo), file=sys.stderr)


if __name__ == "__main__":
    main()
