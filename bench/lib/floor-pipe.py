#!/usr/bin/env python3
"""Floor helper: read a compressed layer blob, sha256 it, decompress it, sha256 the tar
(the diff_id) and write the tar to stdout (for `tar -x`). Python's zlib (system zlib) and
hashlib (OpenSSL, SHA-NI) are the fastest inflate and hash this machine has as ready-made tools
(pigz -dc inflates single-threaded at about half the speed; sha256sum does not use SHA-NI).

usage: floor-pipe.py gzip|zstd BLOB > layer.tar
zstd is decoded by `zstd -dc` (a child process) and hashed here.
"""
import hashlib, os, subprocess, sys, zlib

kind, path = sys.argv[1], sys.argv[2]
out = sys.stdout.buffer
h_blob, h_tar = hashlib.sha256(), hashlib.sha256()
BUF = 1 << 20
if kind == "gzip":
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(BUF)
            if not b:
                break
            h_blob.update(b)
            x = d.decompress(b)
            h_tar.update(x)
            out.write(x)
            while d.unconsumed_tail:
                x = d.decompress(d.unconsumed_tail)
                h_tar.update(x)
                out.write(x)
    x = d.flush()
    h_tar.update(x)
    out.write(x)
else:
    with open(path, "rb", buffering=0) as f:
        h_blob.update(f.read())  # reads it once into the page cache for zstd too
    p = subprocess.Popen(["zstd", "-q", "-dc", path], stdout=subprocess.PIPE)
    while True:
        b = p.stdout.read(BUF)
        if not b:
            break
        h_tar.update(b)
        out.write(b)
    p.wait()
out.flush()
print(kind, h_blob.hexdigest(), h_tar.hexdigest(), file=sys.stderr)
