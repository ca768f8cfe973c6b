# shellcheck shell=bash
# `bash bench/run.sh --net`: strata, containerd and dockerd pull through the shaping proxy
# (bench/net/shaper.py) at several round-trip times and bandwidths. Sourced by bench/run.sh
# after its helpers (registry, fresh_fs, daemons, measure) are defined. See bench/README.md.

net=$bench/net
shaper_pid=
stop_shaper() { stop_pid "$shaper_pid"; shaper_pid=; }
trap 'stop_shaper; cleanup' EXIT

# --only picks per category (tools, images, scenarios); a category none of whose names is
# given runs whole.
net_tools=(strata ctr docker strata-nosync)
net_default_tools=(strata ctr docker)
net_images=(alpine debian bench7 big1)
net_scenarios=(plain auth row)
picked() { # all-names-array default-names-array -> the names to run
    local -n all=$1 def=$2
    local x any=0
    for x in "${all[@]}"; do [[ ",$only," == *",$x,"* ]] && any=1; done
    for x in "${all[@]}"; do
        if [ $any = 1 ]; then
            [[ ",$only," == *",$x,"* ]] && echo "$x"
        else
            [[ " ${def[*]} " == *" $x "* ]] && echo "$x"
        fi
    done
    return 0
}
mapfile -t tools < <(picked net_tools net_default_tools)
mapfile -t images < <(picked net_images net_images)
mapfile -t scenarios < <(picked net_scenarios net_scenarios)
IFS=, read -r -a rtts <<<"${net_rtt:-0,30,100}"
IFS=, read -r -a rates <<<"${net_rate:-100m,1g,1g/50m}"
say "net: tools ${tools[*]}; images ${images[*]}; scenarios ${scenarios[*]}; RTT ${rtts[*]} ms; rates ${rates[*]}"

# -- images ---------------------------------------------------------------------------------
alpine_dir() { # version -> a directory of <arch>/alpine-minirootfs-*.tar.gz
    local d
    for d in "${BENCH_ALPINE_DIR:-}" "$repo/../shared/testdata/alpine/$1" "$repo/../../shared/testdata/alpine/$1" \
        "$repo/testdata/alpine/$1"; do
        [ -n "$d" ] && [ -d "$d" ] && { echo "$d"; return; }
    done
}
push_layout() { # layout tag repo:tag (--all: every platform of an index)
    skopeo copy -q --all --dest-tls-verify=false "oci:$1:$2" "docker://$reg/$3" >&2
}
declare -A ref_of
mkdir -p "$CACHE/net"
if [[ " ${images[*]} " == *" alpine "* ]] || [[ " ${scenarios[*]} " == *" row "* ]]; then
    d=$(alpine_dir 3.20.3)
    [ -n "$d" ] || { echo "no Alpine 3.20.3 minirootfs tarballs (set BENCH_ALPINE_DIR)" >&2; exit 1; }
    python3 "$net/alpine-index.py" "$d" "$reg" bench/alpine:latest >&2
    ref_of[alpine]=bench/alpine:latest
    d=$(alpine_dir 3.19.4)
    if [ -n "$d" ]; then
        python3 "$net/alpine-index.py" "$d" "$reg" bench/alpine-prev:latest >&2
        ref_of[alpine-prev]=bench/alpine-prev:latest
    fi
fi
if [[ " ${images[*]} " == *" debian "* ]] || [[ " ${images[*]} " == *" bench7 "* ]]; then
    v=$(image_variant default)
    push "$v"
    ref_of[bench7]=bench/default:gzip
    if [ ! -s "$CACHE/net/debian/index.json" ]; then
        mkdir -p "$CACHE/net/debian"
        python3 "$lib/oci-layout.py" "$CACHE/net/debian" gzip "$CACHE/tars/default/001.tar" >&2
    fi
    push_layout "$CACHE/net/debian" gzip bench/debian:gzip
    ref_of[debian]=bench/debian:gzip
fi
if [[ " ${images[*]} " == *" big1 "* ]]; then
    say "building the 1-layer image (split 1; cached)"
    v=$(image_variant split 1)
    push "$v"
    ref_of[big1]=bench/$v:gzip
fi
[ -n "${ref_of[alpine-prev]:-}" ] || ref_of[alpine-prev]=${ref_of[debian]:-bench/debian:gzip}

image_bytes() { # repo:tag -> compressed bytes of the linux/amd64 image (manifests, config, layers)
    python3 - "$reg" "$1" <<'PY'
import json, sys, urllib.request
reg, ref = sys.argv[1:3]
repo, tag = ref.rsplit(":", 1)
acc = ", ".join(["application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.list.v2+json",
                 "application/vnd.docker.distribution.manifest.v2+json"])
def get(r):
    req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (reg, repo, r), headers={"Accept": acc})
    b = urllib.request.urlopen(req).read()
    return b, json.loads(b)
b, m = get(tag)
n = len(b)
if "manifests" in m:
    d = [x for x in m["manifests"] if x["platform"]["architecture"] == "amd64"][0]["digest"]
    b, m = get(d)
    n += len(b)
print(n + m["config"]["size"] + sum(l["size"] for l in m["layers"]))
PY
}
declare -A bytes_of
for k in "${!ref_of[@]}"; do bytes_of[$k]=$(image_bytes "${ref_of[$k]}"); done

# -- the proxy --------------------------------------------------------------------------------
proxy_log=$work/proxy.log
start_shaper() { # rtt_ms rate(100m|1g|1g/50m) auth(0|1)
    local delay total conn=0 args=()
    delay=$(python3 -c "print($1 / 2)")
    total=${2%%/*}; [[ $2 == */* ]] && conn=${2#*/}
    mbit() { case $1 in *g) echo $((${1%g} * 1000)) ;; *m) echo "${1%m}" ;; *) echo "$1" ;; esac; }
    [ "$3" = 1 ] && args+=(--auth)
    [ "${NET_SLOW_START:-1}" = 1 ] || args+=(--no-slow-start)
    rm -f "$work/ports.json" "$proxy_log"
    python3 "$net/shaper.py" --upstream "$reg" --ports-file "$work/ports.json" --log "$proxy_log" \
        --delay-ms "$delay" --total-mbit "$(mbit "$total")" --conn-mbit "$(mbit "$conn")" --redirect \
        "${args[@]}" 2>>"$work/shaper.err" &
    shaper_pid=$!
    for _ in $(seq 100); do [ -s "$work/ports.json" ] && break; sleep 0.1; done
    [ -s "$work/ports.json" ] || { cat "$work/shaper.err" >&2; echo "the shaper did not start" >&2; exit 1; }
    shaped=127.0.0.1:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["registry"])' "$work/ports.json")
}

net_out=$work/net.jsonl
: >"$net_out"
pull_cmd() { # tool ref -> the command pulling it (daemons started by the caller)
    case $1 in
        strata) echo "$strata --root $state/s -q pull $2" ;;
        strata-nosync) echo "$strata --root $state/s -q --no-sync pull $2" ;;
        ctr) echo "ctr --address $state/containerd/c.sock -n bench images pull --plain-http --snapshotter overlayfs $2" ;;
        docker) echo "$dockercli -H unix://$state/docker/d.sock pull -q $2" ;;
    esac
}
tool_label() {
    case $1 in
        strata) echo "strata pull" ;; strata-nosync) echo "strata pull --no-sync" ;;
        ctr) echo "containerd (ctr pull)" ;; docker) echo "dockerd (docker pull)" ;;
    esac
}
# one cold run: fresh filesystem and daemon, then the pull(s) of the scenario through a fresh proxy
net_run() { # tool scenario image rtt rate round
    local tool=$1 sc=$2 img=$3 rtt=$4 rate=$5 round=$6 daemon=() auth=0
    [ "$sc" = plain ] || auth=1
    fresh_fs
    case $tool in
        ctr) start_containerd; daemon=(--daemon "$containerd_pid") ;;
        docker) start_dockerd; daemon=(--daemon "$dockerd_pid") ;;
    esac
    drop_caches
    start_shaper "$rtt" "$rate" "$auth"
    local fields=(scenario="$sc" net_image="$img" rtt="$rtt" rate="$rate" image_bytes="${bytes_of[$img]}")
    if [ "$sc" = row ]; then
        # The first pull of the row (another image), then the one measured, through the same
        # proxy (auth challenge and tokens may be remembered).
        # shellcheck disable=SC2046
        measure "$(tool_label "$tool")" "${ref_of[alpine-prev]##*/} (1st of a row)" "$round" --quiet-wait 0 "${daemon[@]}" -- \
            $(pull_cmd "$tool" "$shaped/${ref_of[alpine-prev]}")
        : >"$proxy_log"
    fi
    # shellcheck disable=SC2046
    measure "$(tool_label "$tool")" "$img $sc rtt=$rtt rate=$rate" "$round" "${daemon[@]}" -- \
        $(pull_cmd "$tool" "$shaped/${ref_of[$img]}")
    stop_shaper
    python3 "$net/summarize.py" "$proxy_log" "$results" "$net_out" "${fields[@]}" tool_key="$tool"
    sed "s/^{/{\"run\": \"$tool $sc $img rtt=$rtt rate=${rate/\//\\/} round=$round\", /" "$proxy_log" >>"$work/proxy-all.jsonl"
    case $tool in ctr) stop_containerd ;; docker) stop_dockerd ;; esac
}

export BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-3}
for r in $(seq 1 "$rounds"); do
    say "round $r/$rounds"
    for rate in "${rates[@]}"; do
        for rtt in "${rtts[@]}"; do
            for sc in "${scenarios[@]}"; do
                for img in "${images[@]}"; do
                    # Round trips decide small images: auth rows for the small and mid image,
                    # the row of pulls for alpine.
                    case $sc in auth) [[ $img == alpine || $img == debian ]] || continue ;;
                        row) [ "$img" = alpine ] || continue ;; esac
                    n=${#tools[@]}
                    for k in $(seq 0 $((n - 1))); do
                        net_run "${tools[$(((k + r - 1) % n))]}" "$sc" "$img" "$rtt" "$rate" "$r"
                    done
                done
            done
        done
    done
done

commit=$(git -C "$repo" rev-parse --short HEAD)
[ -z "${STRATA_BIN:-}" ] || commit=${BENCH_COMMIT:-"binary $STRATA_BIN"}
name=net-$(date -u +%Y%m%d-%H%M)
python3 "$net/report.py" "$net_out" "$commit" "$("$strata" --version)" "$drop_caches_ok" \
    "${NET_SLOW_START:+NET_SLOW_START=$NET_SLOW_START }bash bench/run.sh ${net_args:---net}" >"$work/net.md"
cp "$work/net.md" "$bench/results/$name.md"
cp "$net_out" "$bench/results/$name.jsonl"
cp "$work/cmd.log" "$bench/results/$name-cmd.log" 2>/dev/null || true
cp "$work/proxy-all.jsonl" "$bench/results/$name-proxy.jsonl"
cat "$work/net.md"
say "saved bench/results/$name.md and $name.jsonl"
