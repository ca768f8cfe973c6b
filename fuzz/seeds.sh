#!/usr/bin/env bash
# Writes a small seed corpus for the apply_layer target into corpus/apply_layer/: tars made
# by GNU tar in its three formats (dirs, files, symlinks, hard links, a fifo, whiteouts, an
# opaque marker, long names, a small sparse file, xattrs). Each seed starts with the mode
# byte the target reads first (0: bytes as they are, 1: checksums fixed up).
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
truncate -s 16K root/d/sparse && printf x | dd of=root/d/sparse bs=1 seek=10000 conv=notrunc 2>/dev/null
setfattr -n user.x -v 1 root/etc/hostname 2>/dev/null || true
cp -a root short && rm "short/d/$long"
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
echo "seeds in $(cd "$OLDPWD" && pwd)/$out: $(ls "$OLDPWD/$out" | wc -l)"
