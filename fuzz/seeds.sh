#!/usr/bin/env bash
# Writes a small seed corpus for the apply_layer target into corpus/apply_layer/: tars made
# by GNU tar in its three formats (dirs, files, symlinks, hard links, a fifo, whiteouts, an
# opaque marker, long names and link targets, sparse files (one with more fragments than an
# old GNU header holds: extension blocks), xattrs (one binary, with newline and NUL bytes)).
# Each seed starts with the mode byte the target reads first (0: bytes as they are, 1:
# checksums fixed up).
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/apply_layer
mkdir -p "$out"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cd "$src"
mkdir -p root/etc root/usr/bin root/var/run root/d
echo hello > root/etc/hostname
echo tool > root/usr/bin/tool
ln root/usr/bin/tool root/usr/bin/tool-link
ln -s /run root/var/run/link
ln -s ../etc/hostname root/d/rel
mkfifo root/d/fifo
touch root/d/.wh.gone root/d/.wh..wh..opq
long=$(printf 'l%.0s' $(seq 1 150))
echo long > "root/d/$long"
ln -s "$(printf 't%.0s' $(seq 1 150))" root/d/longlink
truncate -s 16K root/d/sparse && printf x | dd of=root/d/sparse bs=1 seek=10000 conv=notrunc 2>/dev/null
# Five 4 KiB data blocks with holes between (filesystems find holes by block): more fragments
# than an old GNU sparse header holds.
truncate -s 40K root/d/frags
for i in 0 1 2 3 4; do
  printf y | dd of=root/d/frags bs=1 seek=$((i * 8192 + 100)) conv=notrunc 2>/dev/null
done
setfattr -n user.x -v 1 root/etc/hostname 2>/dev/null || true
setfattr -n user.bin -v 0x0a00410a000a root/usr/bin/tool 2>/dev/null || true
cp -a root short && rm "short/d/$long" short/d/longlink short/d/frags
for fmt in posix gnu ustar v7; do
  dir=root
  [ "$fmt" = ustar ] || [ "$fmt" = v7 ] && dir=short
  extra=(--blocking-factor=1)
  [ "$fmt" = posix ] && extra=(--xattrs --xattrs-include='*')
  [ "$fmt" != ustar ] && [ "$fmt" != v7 ] && extra+=(--sparse)
  tar --format=$fmt "${extra[@]}" -C $dir -cf "$fmt.tar" . 2>/dev/null || continue
  for mode in 0 1; do
    { printf "\\x0$mode"; cat "$fmt.tar"; } > "$OLDPWD/$out/gnutar-$fmt-$mode"
  done
done

# Hand-made seeds (mode byte 1: the target fixes the checksums up) for what GNU tar does not
# write for small files: a PAX `size` overriding a header size of 0 (Go writes that for files
# over 8 GiB), an xattr value with newline and NUL bytes next to it, and a GNU long name
# together with a PAX path (refused as ambiguous).
# hdr NAME TYPE SIZE: a ustar header block, checksum blank.
hdr() {
  printf '%s' "$1"; head -c $((100 - ${#1})) /dev/zero
  printf '%s\0' 0000644 0000000 0000000
  printf '%011o\0%011o\0' "$3" 1600000000
  printf '        %s' "$2"; head -c 100 /dev/zero
  printf 'ustar\0%s' 00; head -c 247 /dev/zero
}
# data BYTES: the data (printf format), zero-padded to a block boundary.
data() {
  local n
  n=$(printf "$1" | wc -c)
  printf "$1"; head -c $(((512 - n % 512) % 512)) /dev/zero
}
pax='10 size=5\n27 SCHILY.xattr.user.b=\n\0=\n\n'
{ printf '\x01'; hdr PaxHeaders/big x "$(printf "$pax" | wc -c)"; data "$pax"
  hdr big 0 0; data hello; hdr after 0 2; data 'a\n'; head -c 1024 /dev/zero
} > "$OLDPWD/$out/hand-pax-size-1"
{ printf '\x01'; hdr ././@LongLink L 5; data 'long\0'
  hdr PaxHeaders/x x 12; data '12 path=pax\n'; hdr f 0 0; head -c 1024 /dev/zero
} > "$OLDPWD/$out/hand-long-and-pax-1"
echo "seeds in $(cd "$OLDPWD" && pwd)/$out: $(ls "$OLDPWD/$out" | wc -l)"
