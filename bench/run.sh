#!/usr/bin/env bash
# Side-by-side benchmark: strata vs containerd (ctr), dockerd (docker pull), skopeo + umoci and a
# "floor" (inflate + sha256 + tar -x of the same bytes), all pulling the same image from a private
# docker-registry on 127.0.0.1; and `strata load` vs `docker load` and `podman load` of a
# `docker save` tarball of it. See bench/README.md.
#
#   bash bench/run.sh              default mode (< ~10 min once the image is cached)
#   bash bench/run.sh --scaling    1/10/50/200 layers, 2x/4x bytes, 200-layer mount, 100 containers
#   bash bench/run.sh --profile    perf stat / strace -c / perf record of one cold strata pull
#   bash bench/run.sh --store-scale  1,000 images + 1,000 containers in one root: images, ps,
#                                  system df, rmi, prunes of N, warm pull-and-mount (issue 13)
#   bash bench/run.sh --net        pulls through a shaping proxy with Docker Hub's shape (token
#                                  auth, 307 to a blob host) at RTT 0/30/100 ms, 100 Mbit/s,
#                                  1 Gbit/s, 50 Mbit/s per connection (issue 17; bench/net/)
# Options: --rounds N (default 3; 2 for --scaling; warm runs per command for --store-scale: 7),
#          --no-build (use an existing binary), --only LIST (comma-separated tests, e.g.
#          strata-pull,ctr; --net: tools, images and scenarios, e.g. strata,ctr,alpine,auth),
#          --rtt MS,... and --rate 100m,1g,1g/50m (--net: total[/per connection]), --fs loop|host (where the stores live: a new ext4 filesystem for
#          every cold run (default), or a directory on the host's filesystem).
#          Environment: BENCH_CACHE (default /var/cache/strata-bench), STRATA_BIN (binary to use, implies --no-build),
#          STRATA_BASE_BIN (another strata binary, e.g. an older commit's: adds its pull rows,
#          "strata pull (base)", alternating with the others, for a before/after comparison),
#          CARGO_TARGET_DIR (honoured when building), BENCH_SCALE_IMAGES (--store-scale: images
#          and containers, default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bench=$repo/bench
lib=$bench/lib

mode=default
rounds=
build=1
only=
fs=loop
net_rtt= net_rate=
net_args=$*
while [ $# -gt 0 ]; do
    case $1 in
        --scaling) mode=scaling ;;
        --profile) mode=profile ;;
        --rounds) rounds=$2; shift ;;
        --no-build) build=0 ;;
        --only) only=$2; shift ;;
        --fs) fs=$2; shift ;;
        --store-scale) mode=store-scale ;;
        --net) mode=net ;;
        --rtt) net_rtt=$2; shift ;;
        --rate) net_rate=$2; shift ;;
        -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case $fs in loop | host) ;; *) echo "--fs takes loop or host" >&2; exit 2 ;; esac
case $mode in scaling) r0=2 ;; store-scale) r0=7 ;; *) r0=3 ;; esac
[ -n "$rounds" ] || rounds=$r0
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh must run as root (overlay mounts, daemons, drop_caches)" >&2
    exit 1
fi
export BENCH_CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
CACHE=$BENCH_CACHE
say() { echo "== $*" >&2; }

# -- 1. packages -------------------------------------------------------------------------
packages=(docker-registry skopeo umoci containerd docker.io podman debootstrap pigz zstd time procps
          python3 curl tar util-linux e2fsprogs ca-certificates uidmap)
[ $mode = profile ] && packages+=(linux-perf strace)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # docker.io/containerd want to start their services; policy-rc.d or no systemd stop that,
    # and the benchmark runs its own private daemons anyway.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# /usr/local/bin may hold another docker client: use Debian's, matching its dockerd.
dockercli=/usr/bin/docker
[ -x $dockercli ] || dockercli=$(command -v docker)

# -- 2. strata ---------------------------------------------------------------------------
if [ -n "${STRATA_BIN:-}" ]; then
    strata=$STRATA_BIN
elif [ $build = 1 ]; then
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
    say "cargo build --release"
    cargo build --release --quiet
    strata=${CARGO_TARGET_DIR:-$repo/target}/release/strata
else
    strata=${CARGO_TARGET_DIR:-$repo/target}/release/strata
fi
[ -x "$strata" ] || { echo "no strata binary at $strata" >&2; exit 1; }
# A private copy: other builds may replace the binary while we measure.
work=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
cp "$strata" "$work/strata"
strata=$work/strata
base=
if [ -n "${STRATA_BASE_BIN:-}" ]; then
    cp "$STRATA_BASE_BIN" "$work/strata-base"
    base=$work/strata-base
fi

# -- 3. cleanup of everything we start -----------------------------------------------------
registry_pid= containerd_pid= dockerd_pid=
stop_pid() { # pid
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
umount_under() { # dir: unmount every mount below dir, deepest first
    local m
    findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}
cleanup() {
    set +e
    rootless_stop
    stop_pid "$dockerd_pid"; stop_pid "$containerd_pid"; stop_pid "$registry_pid"
    drop_fs
    umount_under "$work"
    rm -rf "$work"
}
trap cleanup EXIT

# Where the stores of the cold runs live. --fs loop: each cold run gets a new ext4 filesystem
# (mkfs.ext4 defaults, so with a journal) on a loop device over a sparse file, with direct I/O so
# nothing is cached twice. Every tool then starts from the same fresh filesystem, and no run pays
# for the previous run's deletions: on an ext4 without a journal (this machine's root, seen
# here) the inode allocator skips inodes freed in the last minute (`recently_deleted()`), which
# cost strata about 1.4 of its 3.4 CPU-s in a cold pull right after another run's `rm -rf`.
state=$work/state
fs_dev=
drop_fs() {
    [ -n "$fs_dev" ] || return 0
    umount_under "$state"
    umount "$state" 2>/dev/null || umount -l "$state" 2>/dev/null || true
    losetup -d "$fs_dev" 2>/dev/null || true
    fs_dev=
    rm -f "$work/fs.img"
}
fresh_fs() { # an empty $state for the next cold run
    if [ "$fs" = host ]; then
        umount_under "$state"; rm -rf "$state"; mkdir -p "$state"
        return
    fi
    drop_fs
    truncate -s 64G "$work/fs.img"
    fs_dev=$(losetup --direct-io=on --find --show "$work/fs.img")
    # Inode tables and journal written now, not by a kernel thread during the runs.
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs_dev"
    mkdir -p "$state"
    mount "$fs_dev" "$state"
}

# strata-rootless: strata as an unprivileged user with subordinate ids (issue 18), made here.
rl_user=strata-bench
rootless_setup() { # the user, its subordinate range, dirs it can reach on the fresh filesystem
    if ! id -u "$rl_user" >/dev/null 2>&1; then
        useradd -M -s /usr/sbin/nologin -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$rl_user"
    fi
    local f
    for f in /etc/subuid /etc/subgid; do
        grep -q "^$rl_user:" "$f" 2>/dev/null || echo "$rl_user:600000:65536" >>"$f"
    done
    chmod 711 "$work" "$state"
    mkdir -p "$state/rl/home" "$state/rl/data" "$state/rl/run"
    chown -R "$rl_user:$rl_user" "$state/rl"
}
rootless_stop() { # the pause process keeps the namespaces, and with them $state's mount, busy
    local pid
    pid=$(cut -d' ' -f1 "$state/rl/run/strata/pause.pid" 2>/dev/null) || return 0
    [ -n "$pid" ] && stop_pid "$pid"
    rm -f "$state/rl/run/strata/pause.pid"
}
# as $rl_user with HOME and XDG dirs under $state/rl (an array: measure.py runs it directly)
as_rootless=(setpriv --reuid "$rl_user" --regid "$rl_user" --init-groups env -i PATH="$PATH"
             HOME="$state/rl/home" XDG_DATA_HOME="$state/rl/data" XDG_RUNTIME_DIR="$state/rl/run")

drop_caches_ok=no
drop_caches() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then drop_caches_ok=yes; fi
}

free_port() {
    local c
    for c in $(shuf -i 20000-60000 -n 100); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$c") 2>/dev/null; then echo "$c"; return; fi
    done
    echo "no free port" >&2; exit 1
}

# -- 4. registry ---------------------------------------------------------------------------
port=$(free_port)
reg=127.0.0.1:$port
mkdir -p "$CACHE/registry/storage"
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $CACHE/registry/storage
http:
  addr: $reg
  secret: strata-bench
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$reg/v2/" >/dev/null || { cat "$work/registry.log" >&2; exit 1; }
say "registry http://$reg (storage $CACHE/registry/storage)"

# push VARIANT: build (cached) and push bench/VARIANT:gzip and :zstd (skipped when present)
push() {
    local variant=$1 comp
    for comp in gzip zstd; do
        local layout=$CACHE/oci/$variant-$comp
        local want have
        want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest"])' "$layout/summary.json")
        have=$(curl -fsSI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
            "http://$reg/v2/bench/$variant/manifests/$comp" 2>/dev/null |
            awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}' | tr -d '\r' || true)
        if [ "$have" != "$want" ]; then
            say "skopeo copy oci:$layout:$comp docker://$reg/bench/$variant:$comp"
            skopeo copy -q --dest-tls-verify=false "oci:$layout:$comp" "docker://$reg/bench/$variant:$comp"
        fi
    done
}
# saved_tar VARIANT: a `docker save`-format tarball of bench/VARIANT (made once from its OCI
# layout with skopeo, cached) -> its path
saved_tar() {
    local variant=$1 tar=$CACHE/docker-archive/$1.tar
    if [ ! -s "$tar" ]; then
        mkdir -p "$CACHE/docker-archive"
        rm -f "$tar.tmp"
        say "skopeo copy oci:$CACHE/oci/$variant-gzip:gzip docker-archive:$tar"
        skopeo copy -q "oci:$CACHE/oci/$variant-gzip:gzip" "docker-archive:$tar.tmp:bench/$variant:latest" >&2
        mv "$tar.tmp" "$tar"
    fi
    echo "$tar"
}
image_variant() { # build-image.sh args... -> variant name
    bash "$lib/build-image.sh" "$@" | tail -1
}

# -- 5. private daemons (fresh, empty state for every cold run) ---------------------------
start_containerd() {
    local d=$state/containerd
    rm -rf "$d"; mkdir -p "$d"
    cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/c.sock"
[ttrpc]
  address = "$d/c.sock.ttrpc"
TOML
    containerd --config "$d/config.toml" --log-level error >>"$work/containerd.log" 2>&1 &
    containerd_pid=$!
    for _ in $(seq 200); do
        ctr --address "$d/c.sock" version >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    tail -20 "$work/containerd.log" >&2; echo "containerd did not start" >&2; exit 1
}
stop_containerd() {
    stop_pid "$containerd_pid"; containerd_pid=
    umount_under "$state/containerd"; rm -rf "$state/containerd"
}
start_dockerd() {
    local d=$state/docker
    rm -rf "$d"; mkdir -p "$d"
    dockerd --data-root "$d/data" --exec-root "$d/exec" --host "unix://$d/d.sock" \
        --pidfile "$d/d.pid" --bridge=none --iptables=false --ip-masq=false \
        --storage-driver overlay2 --insecure-registry "$reg" --log-level error \
        >>"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 300); do
        $dockercli -H "unix://$d/d.sock" version >/dev/null 2>&1 && return 0
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$work/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1
}
stop_dockerd() {
    stop_pid "$dockerd_pid"; dockerd_pid=
    umount_under "$state/docker"; rm -rf "$state/docker"
}

# -- 6. measurement ------------------------------------------------------------------------
results=$work/results.jsonl
: >"$results"
measure() { # tool image round [--daemon PID] -- cmd...
    local tool=$1 image=$2 round=$3; shift 3
    python3 "$lib/measure.py" --out "$results" --tool "$tool" --image "$image" --round "$round" \
        --log "$work/cmd.log" "$@" | python3 -c '
import json,sys; r=json.loads(sys.stdin.read())
print("   %-34s %-5s wall %7.3fs  cpu %7.2fs (client %6.2f + daemon %6.2f)  maxrss %6.1f MiB  other load %.2f%s" % (
  r["tool"], r["image"], r["wall"], r["cpu"], r["client_cpu"], r["daemon_cpu"], r["maxrss_kb"]/1024, r["other_load"],
  "" if r["exit"]==0 else "  EXIT %d" % r["exit"]), file=sys.stderr)'
}
wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

# one cold run of TEST for IMAGE (variant) COMP in ROUND
run_test() {
    local t=$1 variant=$2 comp=$3 round=$4
    local ref=$reg/bench/$variant:$comp
    local label=$comp
    [ "$variant" = default ] || label=$variant/$comp
    case $t in
        strata-pull)
            fresh_fs; drop_caches
            measure "strata pull" "$label" "$round" -- "$strata" --root "$state/s" -q pull "$ref" ;;
        strata-pull-nosync)
            fresh_fs; drop_caches
            measure "strata pull --no-sync" "$label" "$round" -- "$strata" --root "$state/s" -q --no-sync pull "$ref" ;;
        strata-rootless)
            # A user's first rootless pull: it also starts the pause process (user namespace).
            fresh_fs; rootless_setup; drop_caches
            measure "strata pull (rootless)" "$label" "$round" -- "${as_rootless[@]}" "$strata" -q pull "$ref"
            rootless_stop ;;
        base-pull)
            fresh_fs; drop_caches
            measure "strata pull (base)" "$label" "$round" -- "$base" --root "$state/s" -q pull "$ref" ;;
        base-pull-nosync)
            fresh_fs; drop_caches
            measure "strata pull --no-sync (base)" "$label" "$round" -- "$base" --root "$state/s" -q --no-sync pull "$ref" ;;
        strata-pull-digest)
            # The opt-in content digest for `check --content`: its cost over `strata pull`.
            fresh_fs; drop_caches
            measure "strata pull --content-digest" "$label" "$round" -- "$strata" --root "$state/s" -q --content-digest pull "$ref" ;;
        strata-pam)
            fresh_fs; drop_caches
            measure "strata pull-and-mount (cold)" "$label" "$round" -- \
                "$strata" --root "$state/s" -q pull-and-mount --name cold "$ref"
            local i
            for i in 1 2 3 4 5; do
                measure "strata pull-and-mount (warm)" "$label" "$round" \
                    --quiet-wait "$([ $i = 1 ] && echo "${BENCH_QUIET_WAIT:-10}" || echo 0.5)" -- \
                    "$strata" --root "$state/s" -q pull-and-mount --pull missing --name "warm$i" "$ref"
                "$strata" --root "$state/s" -q rm -f "warm$i" >/dev/null
            done
            "$strata" --root "$state/s" -q rm -f cold >/dev/null ;;
        ctr)
            fresh_fs; start_containerd; drop_caches
            measure "containerd (ctr pull)" "$label" "$round" --daemon "$containerd_pid" -- \
                ctr --address "$state/containerd/c.sock" -n bench images pull --plain-http \
                --snapshotter overlayfs "$ref"
            stop_containerd ;;
        docker)
            fresh_fs; start_dockerd; drop_caches
            measure "dockerd (docker pull)" "$label" "$round" --daemon "$dockerd_pid" -- \
                $dockercli -H "unix://$state/docker/d.sock" pull -q "$ref"
            stop_dockerd ;;
        umoci)
            [ "$comp" = gzip ] || return 0   # umoci 0.4.7 cannot read zstd layers
            fresh_fs; mkdir -p "$state/u"; drop_caches
            measure "skopeo copy + umoci unpack" "$label" "$round" -- bash -c \
                'skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$2/layout:x" && umoci unpack --image "$2/layout:x" "$2/bundle" >/dev/null' \
                _ "$ref" "$state/u" ;;
        floor)
            fresh_fs; mkdir -p "$state/f"; drop_caches
            measure "floor (inflate+sha256+tar -x)" "$label" "$round" -- \
                bash "$lib/floor.sh" "$comp" "$CACHE/oci/$variant-$comp" "$state/f" ;;
        strata-load)
            fresh_fs; drop_caches
            measure "strata load" "$label" "$round" -- "$strata" --root "$state/s" -q load -i "$saved" ;;
        docker-load)
            fresh_fs; start_dockerd; drop_caches
            measure "dockerd (docker load)" "$label" "$round" --daemon "$dockerd_pid" -- \
                $dockercli -H "unix://$state/docker/d.sock" load -q -i "$saved"
            stop_dockerd ;;
        podman-load)
            # Daemonless: its storage (and its temporary files) on the fresh filesystem.
            fresh_fs; mkdir -p "$state/podman/tmp"; drop_caches
            measure "podman load" "$label" "$round" -- env TMPDIR="$state/podman/tmp" \
                podman --root "$state/podman/root" --runroot "$state/podman/run" \
                --storage-driver overlay --events-backend file --cgroup-manager cgroupfs \
                load -q -i "$saved"
            umount_under "$state/podman"; rm -rf "$state/podman" ;;
        floor-sync)
            # The durable floor, for the synced strata pull: the same, then one syncfs.
            fresh_fs; mkdir -p "$state/f"; drop_caches
            measure "floor + syncfs" "$label" "$round" -- bash -c 'bash "$1" "$2" "$3" "$4" && sync -f "$4"' \
                _ "$lib/floor.sh" "$comp" "$CACHE/oci/$variant-$comp" "$state/f" ;;
    esac
}

meta() { # extra json fields -> $work/meta.json
    local v=$1
    python3 - "$work/meta.json" "$CACHE/oci/$v-gzip/summary.json" "$CACHE/oci/$v-zstd/summary.json" \
        "$CACHE/tars/$v" <<PY
import json, os, subprocess, sys, glob, datetime, platform
out, sg, sz, tars = sys.argv[1:5]
def sh(*c):
    try: return subprocess.run(c, capture_output=True, text=True, cwd="$repo").stdout.strip()
    except Exception: return ""
entries_file = tars + "/entries"
if not os.path.exists(entries_file):
    n = 0
    for t in sorted(glob.glob(tars + "/*.tar")):
        n += int(subprocess.run("tar -tf '%s' | wc -l" % t, shell=True, capture_output=True, text=True).stdout)
    open(entries_file, "w").write(str(n))
g, z = json.load(open(sg)), json.load(open(sz))
commit = sh("git", "rev-parse", "--short", "HEAD")
if sh("git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"): commit += " (+ uncommitted changes in src/)"
if "${STRATA_BIN:-}":
    commit = "${BENCH_COMMIT:-}" or "binary given by STRATA_BIN=${STRATA_BIN:-} (work tree at %s)" % commit
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
m = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
     "kernel": platform.release(), "commit": commit, "cpu": cpu, "ncpu": os.cpu_count(),
     "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
     "layers": g["layers"], "gzip_mib": round(g["compressed"] / 2**20, 1),
     "zstd_mib": round(z["compressed"] / 2**20, 1),
     "tar_mib": round(g["uncompressed_tar"] / 2**20, 1), "entries": int(open(entries_file).read()),
     "rounds": int("$rounds"), "drop_caches": "$drop_caches_ok", "fs": "$fs",
     "versions": {"containerd": sh("containerd", "--version").split(" ")[2:3],
                  "dockerd": sh("dockerd", "--version"), "skopeo": sh("skopeo", "--version"),
                  "umoci": sh("umoci", "--version"), "podman": sh("podman", "--version"),
                  "strata": sh("$strata", "--version")},
     "command": "bash bench/run.sh $mode_args"}
json.dump(m, open(out, "w"))
PY
}

mkdir -p "$bench/results"

# -- 7a. default mode ------------------------------------------------------------------------
if [ $mode = default ]; then
    mode_args=$([ $fs = host ] && echo "--fs host" || true)
    say "building the image (cached in $CACHE)"
    v=$(image_variant default)
    push "$v"
    saved=$(saved_tar "$v")
    tests=(strata-pull ctr strata-pull-nosync docker umoci floor floor-sync strata-pam strata-pull-digest
           strata-load docker-load podman-load strata-rootless)
    [ -z "$base" ] || tests=(strata-pull base-pull "${tests[@]:1:2}" base-pull-nosync "${tests[@]:3}")
    say "measuring: $rounds rounds, tools alternating (${tests[*]}), gzip and zstd"
    for r in $(seq 1 "$rounds"); do
        say "round $r/$rounds"
        # rotate the order every round
        n=${#tests[@]}
        for k in $(seq 0 $((n - 1))); do
            t=${tests[$(((k + r - 1) % n))]}
            wanted "$t" || continue
            for comp in gzip zstd; do
                [ "$t" = strata-pam ] && [ "$comp" = zstd ] && continue
                # A `docker save` tarball has uncompressed layers: one image, labelled tar.
                case $t in *-load) [ "$comp" = zstd ] && continue; comp=tar ;; esac
                run_test "$t" "$v" "$comp" "$r"
            done
        done
    done
    meta "$v"
    python3 "$lib/report.py" default "$results" "$work/meta.json" >"$work/latest.md"
    cp "$work/latest.md" "$bench/results/latest.md"
    cp "$results" "$bench/results/latest.jsonl"
    cp "$work/cmd.log" "$bench/results/latest-cmd.log" 2>/dev/null || true
    cat "$work/latest.md"
    say "saved bench/results/latest.md and latest.jsonl"
fi

# -- 7b. scaling mode --------------------------------------------------------------------------
if [ $mode = scaling ]; then
    mode_args="--scaling$([ $fs = host ] && echo " --fs host" || true)"
    variants=()
    for n in 1 10 50 200; do variants+=("$(image_variant split "$n")"); done
    variants+=("$(image_variant default)" "$(image_variant times 2)" "$(image_variant times 4)")
    for v in "${variants[@]}"; do push "$v"; done
    # uncompressed size and entries of every variant for the report
    for v in "${variants[@]}"; do meta "$v"; cp "$work/meta.json" "$work/meta-$v.json"; done
    say "cold strata pull of every variant, $rounds rounds"
    for r in $(seq 1 "$rounds"); do
        for v in "${variants[@]}"; do
            for comp in gzip zstd; do run_test strata-pull "$v" "$comp" "$r"; done
        done
    done
    say "warm pull-and-mount (mount time) per layer count"
    for v in split1 split10 split50 split200 default; do
        fresh_fs
        "$strata" --root "$state/s" -q pull "$reg/bench/$v:gzip" >/dev/null
        for i in $(seq 1 10); do
            measure "strata pull-and-mount (warm)" "$v" "$i" -- \
                "$strata" --root "$state/s" -q pull-and-mount --pull missing --name "m$i" "$reg/bench/$v:gzip"
            "$strata" --root "$state/s" -q rm -f "m$i" >/dev/null
        done
    done
    say "100 containers from one image"
    fresh_fs
    "$strata" --root "$state/s" -q pull "$reg/bench/default:gzip" >/dev/null
    mkdir -p "$work/c100"
    for i in $(seq 1 100); do
        measure "strata pull-and-mount x100" "default" "$i" --stdout "$work/c100/$i.json" -- \
            "$strata" --root "$state/s" -q pull-and-mount --json --name "c$i" "$reg/bench/default:gzip"
    done
    python3 - "$state/s" "$work/c100" >"$work/c100.json" <<'PY'
import json, os, subprocess, sys, glob
root, d = sys.argv[1], sys.argv[2]
ids = [json.load(open(f))["Id"] for f in glob.glob(d + "/*.json")]
dirs = []
for i in ids:
    dirs += [p for p in (root + "/overlay2/" + i, root + "/overlay2/" + i + "-init",
                         root + "/containers/" + i, root + "/containers/" + i + ".json") if os.path.exists(p)]
# -x: do not descend into the mounted merged dirs
kb = int(subprocess.run(["du", "-skxc"] + dirs, capture_output=True, text=True).stdout.split()[-2])
mounts = sum(1 for l in open("/proc/mounts") if root in l)
print(json.dumps({"containers": len(ids), "du_kib_total": kb, "mounted": mounts}))
PY
    cat "$work/c100.json" >&2
    names=(); for i in $(seq 1 100); do names+=("c$i"); done
    measure "strata rm -f x100 (one command)" "default" "1" -- "$strata" --root "$state/s" -q rm -f "${names[@]}"
    python3 "$lib/report.py" scaling "$results" "$work" >"$work/scaling.md"
    cp "$work/scaling.md" "$bench/results/scaling.md"
    cp "$results" "$bench/results/scaling.jsonl"
    cat "$work/scaling.md"
    say "saved bench/results/scaling.md and scaling.jsonl"
fi

# -- 7c. profile mode ---------------------------------------------------------------------------
if [ $mode = profile ]; then
    v=$(image_variant default)
    push "$v"
    out=$bench/results/profile
    mkdir -p "$out"
    for comp in gzip zstd; do
        fresh_fs; drop_caches
        say "perf stat: strata pull $comp"
        perf stat -d -o "$out/perf-stat-$comp.txt" -- "$strata" --root "$state/s" -q pull "$reg/bench/$v:$comp" >/dev/null
        cat "$out/perf-stat-$comp.txt"
        fresh_fs; drop_caches
        say "strace -c -f: strata pull $comp"
        strace -c -f -o "$out/strace-c-$comp.txt" "$strata" --root "$state/s" -q pull "$reg/bench/$v:$comp" >/dev/null
        head -30 "$out/strace-c-$comp.txt"
        fresh_fs; drop_caches
        say "perf record: strata pull $comp"
        perf record -q -F 499 -g -o "$work/perf.data" -- "$strata" --root "$state/s" -q pull "$reg/bench/$v:$comp" >/dev/null 2>&1
        perf report -i "$work/perf.data" --no-children --stdio --sort dso,symbol --percent-limit 0.7 \
            2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' | head -40 | tee "$out/perf-top-$comp.txt"
    done
fi

# -- 7d. store-scale mode (issue 13) -------------------------------------------------------------
# One root on one fresh ext4 holding $n images and $n containers (50 mounted): the listings, rmi,
# the prunes and a warm pull-and-mount. Images: a shared base layer + one tiny layer each
# (lib/scale-images.py, pushed once, cached in the registry storage); $extra more are pulled and
# removed again by the rmi and prune rows, so every prune removes exactly N. Warm-cache medians;
# the first run of each listing follows a drop_caches (the "cold" rows).
if [ $mode = store-scale ]; then
    mode_args=--store-scale
    n=${BENCH_SCALE_IMAGES:-1000}
    extra=100 mounted=$((n < 50 ? n / 2 : 50))
    say "pushing $((n + extra)) small images (cached)"
    python3 "$lib/scale-images.py" "$reg" bench/scale $((n + extra)) "$CACHE/scale"
    sroot=$state/s
    S() { "$strata" --root "$sroot" -q "$@"; }
    ref() { printf '%s/bench/scale:i%04d' "$reg" "$1"; }
    pull_range() { # first last: pull images first..last, 4 at a time (setup, not measured)
        local i
        for i in $(seq "$1" "$2"); do ref "$i"; echo; done |
            xargs -P 4 -n 1 "$strata" --root "$sroot" -q --no-sync pull >/dev/null
    }
    m() { # tool scene round -- cmd: measure with a short idle wait (many short runs)
        local tool=$1 scene=$2 round=$3; shift 3
        measure "$tool" "$scene" "$round" --quiet-wait "${BENCH_QUIET_WAIT_SHORT:-1}" "$@"
    }
    listings=("images" "images -q" "ps" "system df" "system df -v")
    list_all() { # scene: a cold run then $rounds warm runs of every listing
        local c r
        for c in "${listings[@]}"; do
            drop_caches
            # shellcheck disable=SC2086 # $c is a command and its options
            m "strata $c" "$1" cold -- "$strata" --root "$sroot" $c
            for r in $(seq 1 "$rounds"); do
                # shellcheck disable=SC2086
                m "strata $c" "$1" "$r" -- "$strata" --root "$sroot" $c
            done
        done
    }
    warm_pam() { # scene
        local r
        for r in $(seq 1 10); do
            m "strata pull-and-mount (warm)" "$1" "$r" -- \
                "$strata" --root "$sroot" -q pull-and-mount --pull missing --name "warm$r" "$(ref 1)"
            S rm -f "warm$r" >/dev/null
        done
    }
    counts() { # -> "images containers mounted" of the root
        echo "$(S images -q | wc -l) $("$strata" --root "$sroot" ps --json | python3 -c 'import json,sys; c=json.load(sys.stdin); print(len(c))') $(findmnt -rn -o TARGET | grep -c "^$sroot/")"
    }

    fresh_fs
    say "small root: 1 image, 1 mounted container"
    pull_range 1 1
    S pull-and-mount --name base "$(ref 1)" >/dev/null
    list_all "1 image"
    warm_pam "1 image"

    say "filling the root: $n images, $n containers ($mounted mounted)"
    m "setup: pull $((n - 1)) images, 4 at a time (--no-sync)" "$n images" 1 -- \
        bash -c "$(declare -f ref pull_range); strata=$strata sroot=$sroot reg=$reg; pull_range 2 $n"
    for i in $(seq 1 "$n"); do printf 'c%04d\n' "$i"; done >"$work/names"
    m "setup: pull-and-mount $n containers" "$n images" 1 -- bash -c '
        i=0; while read -r c; do i=$((i + 1))
            "$1" --root "$2" -q pull-and-mount --pull never --name "$c" "$(printf "%s/bench/scale:i%04d" "$3" "$i")" >/dev/null
        done <"$4"' _ "$strata" "$sroot" "$reg" "$work/names"
    tail -n +$((mounted + 1)) "$work/names" | xargs -r -P 2 -n 1 "$strata" --root "$sroot" -q umount
    echo "{\"scene\": \"$n images\", \"counts\": \"$(counts)\"}" >>"$work/scale-counts.jsonl"
    say "images containers mounted: $(counts)"

    say "listings with $n images and $n containers"
    list_all "$n images"
    say "warm pull-and-mount with $n containers"
    warm_pam "$n images"

    say "rmi of one image"
    for r in $(seq 1 5); do
        pull_range $((n + r)) $((n + r))
        m "strata rmi" "$n images" "$r" -- "$strata" --root "$sroot" rmi "$(ref $((n + r)))"
    done

    say "image prune -a -f of N = 0, 10, 100 images"
    for N in 0 10 100; do
        for r in 1 2 3; do
            [ "$N" = 0 ] || pull_range $((n + 1)) $((n + N))
            m "strata image prune -a -f" "N=$N" "$r" --stdout "$work/prune.json" -- \
                "$strata" --root "$sroot" image prune -a -f --json
            python3 -c 'import json,sys; print(json.dumps({"prune": "image", "N": int(sys.argv[1]), "round": sys.argv[2], "out": json.load(open(sys.argv[3]))}))' \
                "$N" "$r" "$work/prune.json" >>"$work/scale-counts.jsonl"
        done
    done

    # A container prune removes every unmounted container: mount all of them so that the N
    # created (then unmounted) for each run are exactly what it removes.
    say "container prune -f of N = 0, 10, 100 containers (all $n others mounted)"
    tail -n +$((mounted + 1)) "$work/names" | xargs -r -P 2 -n 1 "$strata" --root "$sroot" -q mount >/dev/null
    for c in "ps" "system df"; do
        for r in $(seq 1 "$rounds"); do
            # shellcheck disable=SC2086
            m "strata $c" "$n images, all mounted" "$r" -- "$strata" --root "$sroot" $c
        done
    done
    for N in 0 10 100; do
        for r in 1 2 3; do
            for i in $(seq 1 "$N"); do
                S pull-and-mount --pull never --name "p$N-$r-$i" "$(ref $(((i - 1) % n + 1)))" >/dev/null
                S umount "p$N-$r-$i"
            done
            m "strata container prune -f" "N=$N" "$r" --stdout "$work/prune.json" -- \
                "$strata" --root "$sroot" container prune -f --json
            python3 -c 'import json,sys; print(json.dumps({"prune": "container", "N": int(sys.argv[1]), "round": sys.argv[2], "out": json.load(open(sys.argv[3]))}))' \
                "$N" "$r" "$work/prune.json" >>"$work/scale-counts.jsonl"
        done
    done

    python3 "$lib/report-store-scale.py" "$results" "$work/scale-counts.jsonl" "$n" \
        "$(cd "$repo" && git rev-parse --short HEAD)" "$("$strata" --version)" "$drop_caches_ok" \
        >"$work/store-scale.md"
    cp "$work/store-scale.md" "$bench/results/store-scale.md"
    cp "$results" "$bench/results/store-scale.jsonl"
    cat "$work/store-scale.md"
    say "saved bench/results/store-scale.md and store-scale.jsonl"
fi

# -- 7e. net mode (issue 17) -------------------------------------------------------------------
if [ $mode = net ]; then
    # shellcheck source=bench/net/net-mode.sh
    source "$bench/net/net-mode.sh"
fi
