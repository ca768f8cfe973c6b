#!/usr/bin/env python3
"""Split a directory tree into N tar member lists of about equal bytes.

usage: split-lists.py DIR N OUTDIR  -> OUTDIR/001.list ... (paths relative to DIR)
Each list holds its files plus every ancestor directory they need (so every layer is
self-contained); empty directories go to the first list.
"""
import os, sys

root, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entries = []  # (relpath, size, is_dir)
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    rel = os.path.relpath(dirpath, root)
    if rel != ".":
        entries.append((rel, 0, True))
    for fn in sorted(filenames):
        p = os.path.join(dirpath, fn)
        st = os.lstat(p)
        entries.append((os.path.normpath(os.path.join(rel, fn)), st.st_size + 512, False))

total = sum(e[1] for e in entries if not e[2]) or 1
chunks = [[] for _ in range(n)]
acc = 0
for rel, size, is_dir in entries:
    if is_dir:
        continue
    i = min(n - 1, acc * n // total)
    chunks[i].append(rel)
    acc += size
all_dirs = [e[0] for e in entries if e[2]]
for i, files in enumerate(chunks):
    need = set()
    for f in files:
        d = os.path.dirname(f)
        while d and d not in need:
            need.add(d)
            d = os.path.dirname(d)
    dirs = all_dirs if i == 0 else sorted(need)
    with open(os.path.join(out, "%03d.list" % (i + 1)), "w") as fh:
        for d in dirs:
            fh.write(d + "\n")
        for f in files:
            fh.write(f + "\n")
