#!/usr/bin/env bash
# The main job, end to end, on one machine with no internet:
#   1. install the tools (scripts/setup.sh) and build strata (release),
#   2. start a private registry (Debian's docker-registry) on a free loopback port,
#   3. seed it with a two-platform library/alpine (:latest and :3.20.3) built from the
#      Alpine minirootfs tarballs in testdata/ (OCI layout written here, pushed by skopeo),
#   4. `strata pull alpine:latest` through `--mirror docker.io=http://127.0.0.1:PORT`,
#      then `strata images`, `strata inspect alpine` and the overlay2 layout;
#   5. `strata pull-and-mount` (the merged rootfs), `strata ps`, `strata run --rm` via runc,
#      and `strata rm -f`.
# The store goes to $STRATA_ROOT when set (kept), else to a temp dir (removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD

bash scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
echo "== cargo build --release"
cargo build --release
strata=$repo_root/target/release/strata

work=$(mktemp -d /tmp/strata-demo.XXXXXX)
registry_pid=
cleanup() {
    # Never delete a tree with a mounted container in it.
    [ -x "$strata" ] && [ -n "${root:-}" ] && "$strata" --root "$root" -q rm -f demo >/dev/null 2>&1 || true
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
root=${STRATA_ROOT:-$work/root}

# -- 1. a registry on a free port ---------------------------------------------------------
port=
for candidate in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: strata-demo
YAML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$registry_pid" 2>/dev/null; then
        cat "$work/registry/log" >&2
        echo "docker-registry did not start" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null
echo "== registry: http://127.0.0.1:$port (pid $registry_pid)"

# -- 2. a two-platform alpine as an OCI layout --------------------------------------------
layout=$work/oci
mkdir -p "$layout/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

# put_blob FILE -> prints "sha256:<hex> <size>" and stores the file as a blob
put_blob() {
    local hex size
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(stat -c %s "$1")
    cp "$1" "$layout/blobs/sha256/$hex"
    echo "sha256:$hex $size"
}

entries=()
for arch in x86_64 aarch64; do
    case $arch in
        x86_64) platform='"architecture":"amd64","os":"linux"' ;;
        aarch64) platform='"architecture":"arm64","os":"linux","variant":"v8"' ;;
    esac
    tarball=testdata/alpine/3.20.3/$arch/alpine-minirootfs-3.20.3-$arch.tar.gz
    # The .tar.gz is the gzip layer blob as is; the diff_id is the sha256 of the tar inside.
    read -r layer_digest layer_size < <(put_blob "$tarball")
    diff_id=sha256:$(gzip -dc "$tarball" | sha256sum | cut -d' ' -f1)
    printf '{%s,"created":"2024-09-06T11:34:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created":"2024-09-06T11:34:00Z","created_by":"ADD alpine-minirootfs-3.20.3-%s.tar.gz /"}]}' \
        "$platform" "$diff_id" "$arch" >"$work/config-$arch.json"
    read -r config_digest config_size < <(put_blob "$work/config-$arch.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
        "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest-$arch.json"
    read -r manifest_digest manifest_size < <(put_blob "$work/manifest-$arch.json")
    entries+=("$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{%s}}' \
        "$manifest_digest" "$manifest_size" "$platform")")
done
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s,%s]}' \
    "${entries[0]}" "${entries[1]}" >"$work/index.json"
read -r index_digest index_size < <(put_blob "$work/index.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$index_digest" "$index_size" >"$layout/index.json"

for tag in latest 3.20.3; do
    skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
        "oci:$layout:latest" "docker://127.0.0.1:$port/library/alpine:$tag"
done
echo "== seeded 127.0.0.1:$port/library/alpine:{latest,3.20.3} = $index_digest (linux/amd64, linux/arm64/v8)"

# -- 3. strata ------------------------------------------------------------------------------
run() {
    echo "\$ $*"
    "$@"
}
mirror=(--root "$root" --mirror "docker.io=http://127.0.0.1:$port")
run "$strata" "${mirror[@]}" pull alpine:latest
run "$strata" "${mirror[@]}" images
run "$strata" "${mirror[@]}" inspect alpine
run ls -l "$root/overlay2" "$root/overlay2/l"
for dir in "$root"/overlay2/*/; do
    [ "$(basename "$dir")" = l ] && continue
    run ls -l "$dir"
done

# The headline: a mounted, writable rootfs in one step, and a command run in it via runc.
echo "\$ merged=\$(strata pull-and-mount --name demo alpine:latest)"
merged=$("$strata" "${mirror[@]}" pull-and-mount --name demo alpine:latest)
echo "$merged"
run cat "$merged/etc/alpine-release"
run "$strata" "${mirror[@]}" ps
run "$strata" "${mirror[@]}" run --rm alpine:latest cat /etc/os-release
run "$strata" "${mirror[@]}" rm -f demo
if [ -n "${STRATA_ROOT:-}" ]; then
    echo "== store kept in $root"
fi
