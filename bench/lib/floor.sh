#!/usr/bin/env bash
# The floor: for every layer blob of an OCI layout, sha256(blob) + decompress + sha256(tar) +
# GNU tar -x into its own directory; two layers at a time (2 cores), largest first.
# usage: floor.sh gzip|zstd LAYOUT OUTDIR
set -euo pipefail
comp=$1 layout=$2 out=$3
lib=$(cd "$(dirname "$0")" && pwd)
if [ "${4:-}" = --layer ]; then   # internal: one layer
    mkdir -p "$out"
    python3 "$lib/floor-pipe.py" "$comp" "$layout" 2>/dev/null | tar -x --numeric-owner -C "$out"
    exit 0
fi
python3 - "$layout" <<'PY' | xargs -P 2 -I{} bash "$0" "$comp" "$layout/blobs/sha256/{}" "$out/{}" --layer
import json, sys
lay = sys.argv[1]
idx = json.load(open(lay + "/index.json"))
m = json.load(open(lay + "/blobs/" + idx["manifests"][0]["digest"].replace(":", "/")))
for l in sorted(m["layers"], key=lambda l: -l["size"]):
    print(l["digest"].split(":")[1])
PY
