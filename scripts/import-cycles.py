#!/usr/bin/env python3
"""Fails when the files of src/ import each other in a cycle.

A file depends on another when it names an item of that file's module: a `use` statement
(`crate::`, `super::`, `self::` paths, brace groups expanded) or a qualified path in code.
`mod x;` declarations and `pub use` re-exports are naming, not dependence, and test code
(`tests.rs`, `*_tests.rs`, `tests/` folders, `#[cfg(test)] mod tests`) is left out.

Usage: scripts/import-cycles.py [SRC_DIR]   (default: src)
"""

import os
import re
import sys


def module_of(rel):
    """src-relative file path -> module path tuple."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests_and_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # Inline test modules: cut from `#[cfg(test)]` + `mod NAME {` to the end of the file
    # (they come last by convention).
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s*)?mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    # `#[cfg(test)] mod foo;` declarations and `#[cfg(test)] use ...;`
    text = re.sub(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s*)?(mod|use)\s[^;]*;", "", text)
    # String literals: paths inside them are not imports.
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return text


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = tree.strip()
    i = tree.find("{")
    if i < 0:
        return [tree.split(" as ")[0].strip()]
    prefix = tree[:i]
    body = tree[i + 1 : tree.rfind("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item == "self":
            out.append(prefix.rstrip(":"))
        else:
            out.extend(expand(prefix + item))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            parts = rel.split(os.sep)
            if name == "tests.rs" or name.endswith("_tests.rs") or "tests" in parts[:-1]:
                continue
            files[module_of(rel)] = rel
    crate_roots = {m[0] for m in files if m}

    edges = {rel: set() for rel in files.values()}
    for mod, rel in files.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = strip_tests_and_comments(f.read())
        paths = []
        for m in re.finditer(r"(?m)^\s*(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text):
            if m.group(1):
                continue  # re-export
            for p in expand(m.group(3)):
                first = p.split("::")[0]
                paths.append(p if first in ("crate", "super", "self") else "self::" + p)
        body = re.sub(r"(?m)^\s*(pub(\([^)]*\))?\s+)?use\s+[^;]+;", "", text)
        paths.extend(re.findall(r"\b(?:crate|super|self)(?:::\w+)+", body))
        # Child modules named without a prefix (`apply::apply(..)` in archive/mod.rs).
        children = {m[-1] for m in files if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        for m in re.finditer(r"(?<![:\w])(\w+)((?:::\w+)+)", body):
            if m.group(1) in children:
                paths.append("self::" + m.group(1) + m.group(2))
        is_dir_mod = rel.endswith(("mod.rs", "lib.rs", "main.rs"))
        for path in paths:
            segs = [s.strip() for s in path.split("::")]
            cur = list(mod)
            if segs[0] == "crate":
                cur, segs = [], segs[1:]
            elif segs[0] in ("super", "self"):
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        cur = cur[:-1]
                    segs = segs[1:]
            elif segs[0] in crate_roots and mod == ():
                cur = []
            else:
                continue
            # Longest prefix that is a file.
            target = None
            probe = list(cur)
            if tuple(probe) in files:
                target = files[tuple(probe)]
            for s in segs:
                probe.append(s)
                if tuple(probe) in files:
                    target = files[tuple(probe)]
                else:
                    break
            if target and target != rel:
                edges[rel].add(target)
        del is_dir_mod

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    if "-v" in sys.argv:
        for v in sorted(edges):
            print(v, "->", ", ".join(sorted(edges[v])))
    if sccs:
        for comp in sccs:
            print("import cycle:", " <-> ".join(comp))
            for v in comp:
                print(f"  {v} -> {', '.join(sorted(w for w in edges[v] if w in comp))}")
        return 1
    print(f"import graph: {len(files)} files, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
