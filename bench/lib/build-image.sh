#!/usr/bin/env bash
# Build the benchmark image content from Debian packages (no internet beyond apt) and write
# OCI layouts, cached under $BENCH_CACHE (default /var/cache/strata-bench):
#   $BENCH_CACHE/debs/                 .debs from `apt-get download`
#   $BENCH_CACHE/layers/NN-name/       unpacked layer trees (01-base = debootstrap minbase)
#   $BENCH_CACHE/tars/<variant>/NN.tar uncompressed layer tars (GNU tar --numeric-owner)
#   $BENCH_CACHE/oci/<variant>-<gzip|zstd>/   OCI layouts, tag = compression
# Usage: build-image.sh default            the 7-layer image
#        build-image.sh split N            the same content (flattened) split into N layers
#        build-image.sh times K            every layer of the default image with K copies of its bytes
# Prints the variant's directory name on stdout (last line).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${BENCH_CACHE:-/var/cache/strata-bench}
mkdir -p "$CACHE"/{debs,layers,tars,oci}
log() { echo "[build-image] $*" >&2; }

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

# The mirror apt is configured with (one-line or deb822 sources), for debootstrap.
apt_mirror() {
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^https?:/) { print $i; exit } }')
    if [ -z "$m" ]; then
        m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
            awk '/^URIs:/ && $2 !~ /security/ && $2 ~ /debian/ { print $2; exit }')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# Package sets of the layers above the base. Names missing from the archive are skipped.
declare -A LAYER_PKGS=(
    [02-python]="python3 python3-minimal python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11 python3-pkg-resources python3-setuptools python3-pip python3-wheel python3-numpy libexpat1 libmpdec3 libsqlite3-0 libreadline8 libncursesw6 libffi8 media-types libblas3 liblapack3 libgfortran5"
    [03-perl]="perl perl-modules-5.36 libperl5.36 libgdbm6 libgdbm-compat4 liberror-perl"
    [04-toolchain]="gcc-12 cpp-12 gcc cpp binutils binutils-common binutils-x86-64-linux-gnu libbinutils libctf0 libctf-nobfd0 libgprofng0 libgcc-12-dev libc6-dev libc-dev-bin libcrypt-dev libnsl-dev libtirpc-dev linux-libc-dev rpcsvc-proto libasan8 libtsan2 liblsan0 libubsan1 libitm1 libquadmath0 libcc1-0 libgomp1 libatomic1 libisl23 libmpc3 libmpfr6 libjansson4 make"
    [05-llvm]="libllvm15 libz3-4 libedit2 libxml2 libicu72"
    [06-data]="vim-runtime vim vim-common git git-man libcurl3-gnutls liberror-perl tzdata locales manpages less ca-certificates openssl"
)
LAYER_ORDER=(02-python 03-perl 04-toolchain 05-llvm 06-data)

download_debs() { # name pkgs... -> $CACHE/debs/<name>/*.deb
    local name=$1; shift
    local dir=$CACHE/debs/$name
    if [ -f "$dir/.done" ]; then return; fi
    mkdir -p "$dir"
    log "apt-get download ($name): $*"
    if ! (cd "$dir" && apt-get download -qq "$@" >/dev/null 2>&1); then
        local p   # one by one: skip the names this archive does not have
        for p in "$@"; do
            ls "$dir"/"${p}"_*.deb >/dev/null 2>&1 && continue
            (cd "$dir" && apt-get download -qq "$p" >/dev/null 2>&1) || log "  skipped $p (not in the archive)"
        done
    fi
    touch "$dir/.done"
}

build_base() {
    local dir=$CACHE/layers/01-base
    if [ -f "$dir.done" ]; then return; fi
    rm -rf "$dir"
    local mirror
    mirror=$(apt_mirror)
    log "debootstrap --variant=minbase $suite from $mirror"
    mkdir -p "$CACHE/debootstrap-cache"
    if debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap-cache" \
            "$suite" "$dir" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
        :
    else
        log "debootstrap failed (see $CACHE/debootstrap.log); unpacking the host's required packages instead"
        rm -rf "$dir"
        mkdir -p "$dir"
        local pkgs
        pkgs=$(dpkg-query -W -f='${Package} ${Priority}\n' | awk '$2=="required"{print $1}' | tr '\n' ' ')
        # shellcheck disable=SC2086
        download_debs base $pkgs apt gpgv debian-archive-keyring
        local deb
        for deb in "$CACHE"/debs/base/*.deb; do dpkg-deb -x "$deb" "$dir"; done
    fi
    # What an image build would clean: caches, apt lists, device nodes, logs.
    rm -rf "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* "$dir"/var/log/* \
        "$dir"/var/cache/debconf/*-old "$dir"/debootstrap
    find "$dir/dev" -mindepth 1 -delete 2>/dev/null || true
    touch "$dir.done"
}

build_pkg_layer() { # name
    local name=$1 dir=$CACHE/layers/$1
    if [ -f "$dir.done" ]; then return; fi
    # shellcheck disable=SC2086
    download_debs "$name" ${LAYER_PKGS[$name]}
    rm -rf "$dir"; mkdir -p "$dir"
    local deb
    for deb in "$CACHE"/debs/"$name"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
    # The base is merged-/usr (/lib -> usr/lib ...): move what the packages ship in /lib, /bin,
    # /sbin into usr/, as dpkg does on such a system, so no layer replaces those symlinks.
    local d
    for d in bin sbin lib lib32 lib64 libx32; do
        if [ -d "$dir/$d" ] && [ ! -L "$dir/$d" ]; then
            mkdir -p "$dir/usr/$d"
            cp -a "$dir/$d/." "$dir/usr/$d/"
            rm -rf "${dir:?}/$d"
        fi
    done
    touch "$dir.done"
}

# Layer 7: deletions of lower files (whiteouts), an opaque directory and a little new content.
build_whiteout_layer() {
    local dir=$CACHE/layers/07-cleanup
    if [ -f "$dir.done" ]; then return; fi
    rm -rf "$dir"
    local base=$CACHE/layers
    mkdir -p "$dir/usr/share/doc" "$dir/usr/share" "$dir/usr/share/locale" "$dir/usr/bin" \
        "$dir/usr/lib/python3.11" "$dir/etc"
    # whole doc directories of some packages
    local d n=0
    for d in "$base"/0[1-6]-*/usr/share/doc/*/; do
        d=$(basename "$d")
        n=$((n + 1))
        [ $((n % 3)) -eq 0 ] && : >"$dir/usr/share/doc/.wh.$d"
    done
    # the man pages, a few binaries and python's test package
    : >"$dir/usr/share/.wh.man"
    for f in perlbug perlthanks h2xs vimtutor; do : >"$dir/usr/bin/.wh.$f"; done
    : >"$dir/usr/lib/python3.11/.wh.pydoc_data"
    # opaque: usr/share/locale replaced by one language
    : >"$dir/usr/share/locale/.wh..wh..opq"
    mkdir -p "$dir/usr/share/locale/en/LC_MESSAGES"
    cp -a "$base/01-base/usr/share/locale/locale.alias" "$dir/usr/share/locale/" 2>/dev/null || true
    echo "strata-bench" >"$dir/etc/hostname"
    echo 'PRETTY_NAME="strata bench image"' >"$dir/etc/bench-release"
    touch "$dir.done"
}

# tar_dir DIR OUT: a layer tar of DIR's contents, names without "./", numeric owners.
tar_dir() {
    local dir=$1 out=$2
    (cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort >"$out.top")
    tar -C "$dir" --numeric-owner --sort=name --xattrs --xattrs-include='*' -cf "$out.tmp" -T "$out.top"
    rm -f "$out.top"
    mv "$out.tmp" "$out"
}

default_layers() {
    build_base
    local l
    for l in "${LAYER_ORDER[@]}"; do build_pkg_layer "$l"; done
    build_whiteout_layer
}

# compress VARIANT: gzip (pigz -6) and zstd (-3) blobs and OCI layouts for each tar of a variant
make_layouts() {
    local variant=$1
    local tars=$CACHE/tars/$variant
    local comp
    for comp in gzip zstd; do
        local layout=$CACHE/oci/$variant-$comp
        if [ -f "$layout/.done" ]; then continue; fi
        log "compressing $variant ($comp) and writing $layout"
        rm -rf "$layout"
        mkdir -p "$layout/blobs/sha256"
        local t
        for t in "$tars"/*.tar; do
            local c=${t%.tar}.tar.$([ $comp = gzip ] && echo gz || echo zst)
            if [ ! -f "$c" ]; then
                if [ $comp = gzip ]; then pigz -6 -c "$t" >"$c.tmp"; else zstd -q -3 -T0 -c "$t" >"$c.tmp"; fi
                mv "$c.tmp" "$c"
            fi
        done
        python3 "$here/oci-layout.py" "$layout" "$comp" "$tars"/*.tar
        touch "$layout/.done"
    done
}

mode=${1:-default}
case $mode in
    default)
        variant=default
        default_layers
        if [ ! -f "$CACHE/tars/$variant/.done" ]; then
            mkdir -p "$CACHE/tars/$variant"
            i=0
            for l in 01-base "${LAYER_ORDER[@]}" 07-cleanup; do
                i=$((i + 1))
                log "tar layer $i ($l)"
                tar_dir "$CACHE/layers/$l" "$CACHE/tars/$variant/$(printf %03d $i).tar"
            done
            touch "$CACHE/tars/$variant/.done"
        fi
        ;;
    split)
        n=$2
        variant=split$n
        default_layers
        if [ ! -f "$CACHE/tars/$variant/.done" ]; then
            flat=$CACHE/layers/flat
            if [ ! -f "$flat.done" ]; then
                log "flattening the package layers into $flat"
                rm -rf "$flat"; mkdir -p "$flat"
                for l in 01-base "${LAYER_ORDER[@]}"; do cp -a "$CACHE/layers/$l/." "$flat/"; done
                touch "$flat.done"
            fi
            rm -rf "$CACHE/tars/$variant"; mkdir -p "$CACHE/tars/$variant"
            log "splitting into $n layers"
            python3 "$here/split-lists.py" "$flat" "$n" "$CACHE/tars/$variant"
            for list in "$CACHE/tars/$variant"/*.list; do
                tar -C "$flat" --numeric-owner --no-recursion --xattrs --xattrs-include='*' \
                    -cf "${list%.list}.tar" -T "$list"
                rm -f "$list"
            done
            touch "$CACHE/tars/$variant/.done"
        fi
        ;;
    times)
        k=$2
        variant=x$k
        "$0" default >/dev/null
        if [ ! -f "$CACHE/tars/$variant/.done" ]; then
            rm -rf "$CACHE/tars/$variant"; mkdir -p "$CACHE/tars/$variant"
            i=0
            for l in 01-base "${LAYER_ORDER[@]}" 07-cleanup; do
                i=$((i + 1))
                out=$CACHE/tars/$variant/$(printf %03d $i).tar
                log "tar layer $i ($l) x$k"
                cp "$CACHE/tars/default/$(printf %03d $i).tar" "$out"
                if [ "$l" != 07-cleanup ]; then
                    # copies of the layer's files under /copyN/ (same bytes again, new names)
                    for c in $(seq 2 "$k"); do
                        tar -C "$CACHE/layers/$l" --numeric-owner --sort=name --xattrs --xattrs-include='*' \
                            --transform "s,^\\.,copy$c,rh" -rf "$out" .
                    done
                fi
            done
            touch "$CACHE/tars/$variant/.done"
        fi
        ;;
    *) echo "usage: $0 default | split N | times K" >&2; exit 2 ;;
esac
make_layouts "$variant"
echo "$variant"
