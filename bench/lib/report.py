#!/usr/bin/env python3
"""Markdown report of bench/run.sh measurements.

usage: report.py default RESULTS.jsonl META.json
       report.py scaling RESULTS.jsonl WORKDIR     (reads WORKDIR/meta-<variant>.json, c100.json)
"""
import json, os, statistics, sys

MIB = 1 << 20


def load(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def group(rows):
    g = {}
    for r in rows:
        g.setdefault((r["tool"], r["image"]), []).append(r)
    return g


def stats(rs):
    ok = [r for r in rs if r["exit"] == 0]
    return {"n": len(rs), "ok": len(ok), "wall": med([r["wall"] for r in ok]),
            "cpu": med([r["cpu"] for r in ok]), "rss": max([r["maxrss_kb"] for r in ok], default=0) / 1024,
            "fail": sorted({r["exit"] for r in rs if r["exit"] != 0}),
            "other": med([r.get("other_load", 0) for r in ok])}


def verdict(ok):
    return "PASS" if ok else "FAIL"


def default(results, meta_path):
    rows = load(results)
    meta = json.load(open(meta_path))
    g = group(rows)
    order = ["strata pull", "strata pull --no-sync", "strata pull --content-digest", "strata pull (rootless)", "strata pull-and-mount (cold)", "strata pull-and-mount (warm)",
             "containerd (ctr pull)", "dockerd (docker pull)", "skopeo copy + umoci unpack",
             "floor (inflate+sha256+tar -x)", "floor + syncfs",
             "strata load", "dockerd (docker load)", "podman load"]
    out = []
    p = out.append
    p("# strata benchmark: cold pull + unpack from a loopback registry")
    p("")
    p("- date: %s; kernel %s; %s x %d, %d GiB" % (meta["date"], meta["kernel"], meta["cpu"], meta["ncpu"], meta["mem_gib"]))
    p("- strata commit: %s" % meta["commit"])
    p("- image: %d layers (Debian bookworm minbase + python3, perl, gcc-12 toolchain, libllvm15, data/docs, "
      "a whiteout + opaque layer), %.0f MiB of tar, %d tar entries; gzip (pigz -6) %.0f MiB, zstd (-3) %.0f MiB"
      % (meta["layers"], meta["tar_mib"], meta["entries"], meta["gzip_mib"], meta["zstd_mib"]))
    v = meta["versions"]
    p("- tools: containerd %s (overlayfs snapshotter), %s (overlay2), %s, umoci %s" % (
        (v.get("containerd") or ["?"])[0], v.get("dockerd", "?"), v.get("skopeo", "?"),
        v.get("umoci", "?").split()[-1] if v.get("umoci") else "?"))
    p("- %d rounds, tools alternating run by run; every cold run starts from an empty store / fresh daemon; "
      "page cache dropped before each cold run: %s" % (meta["rounds"], meta["drop_caches"]))
    if meta.get("fs") == "loop":
        p("- stores: a new ext4 filesystem (mkfs.ext4 defaults, journal on) on a loop device with "
          "direct I/O for every cold run (`--fs loop`)")
    elif meta.get("fs") == "host":
        p("- stores: a directory on the host's filesystem, emptied before every cold run (`--fs host`)")
    p("- wall: wait4 around the client; CPU: client rusage (incl. its children) + the daemon's whole "
      "process tree (utime+stime+cutime+cstime from /proc, delta over the run); the registry's own CPU "
      "is not counted for anyone. Peak RSS: the client's (for strata, strata itself). Medians. "
      "other load: median CPU (in cores) that the rest of the machine used during the runs: "
      "a noise indicator (0 = quiet machine; this machine has %s cores)." % meta["ncpu"])
    p("- command: `%s`" % meta["command"].strip())
    p("")
    p("| tool | image | runs | wall s | CPU s | client peak RSS MiB | strata pull / tool, wall | strata pull / tool, CPU | other load |")
    p("|---|---|---|---|---|---|---|---|---|")
    ref = {img: stats(g[("strata pull", img)]) for img in ("gzip", "zstd") if ("strata pull", img) in g}
    # The load rows (a `docker save` tarball, image "tar") compare with strata load.
    if ("strata load", "tar") in g:
        ref["tar"] = stats(g[("strata load", "tar")])
    keys = sorted(g, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))
    S = {}
    for k in keys:
        s = stats(g[k])
        S[k] = s
        tool, img = k
        if s["ok"] == 0:
            p("| %s | %s | %d | failed (exit %s) | | | | | |" % (tool, img, s["n"], ",".join(map(str, s["fail"]))))
            continue
        r = ref.get(img)
        if r and not tool.startswith("strata") and r["ok"]:
            rw, rc = "%.2fx" % (r["wall"] / s["wall"]), "%.2fx" % (r["cpu"] / s["cpu"]) if s["cpu"] > 0 else ""
        else:
            rw = rc = ""
        wall = "%.3f" % s["wall"] if s["wall"] >= 1 else "%.4f" % s["wall"]
        p("| %s | %s | %d%s | %s | %.2f | %.1f | %s | %s | %.2f |" % (
            tool, img, s["ok"], "" if not s["fail"] else " (+%d failed)" % (s["n"] - s["ok"]),
            wall, s["cpu"], s["rss"], rw, rc, s["other"]))
    if any(k[1] == "tar" for k in S):
        p("")
        p("Image `tar`: `load -i` of a `docker save` tarball of the same image (uncompressed layers, "
          "made once with skopeo); its ratio columns are strata load / tool.")
    if any(s["fail"] for s in S.values()):
        p("")
        p("Failed runs: the clients' stderr is in `bench/results/latest-cmd.log` (dockerd 20.10 has no "
          "zstd support: it reads a zstd layer as plain tar, `archive/tar: invalid tar header`).")
    p("")
    p("## Targets")
    p("")
    p("| target | measured | result |")
    p("|---|---|---|")

    def get(tool, img):
        s = S.get((tool, img))
        return s if s and s["ok"] else None

    for tool in ("strata pull", "strata pull --no-sync"):
        for img in ("gzip", "zstd"):
            sp, ct, fl = get(tool, img), get("containerd (ctr pull)", img), get("floor (inflate+sha256+tar -x)", img)
            if sp and ct:
                x = sp["wall"] / ct["wall"]
                p("| cold %s wall <= 0.25x containerd (%s) | %.2fx (%.2f s vs %.2f s) | %s |" % (tool, img, x, sp["wall"], ct["wall"], verdict(x <= 0.25)))
                x = sp["cpu"] / ct["cpu"]
                p("| cold %s CPU <= 0.3x containerd (%s) | %.2fx (%.2f vs %.2f CPU-s) | %s |" % (tool, img, x, sp["cpu"], ct["cpu"], verdict(x <= 0.3)))
            if sp and fl:
                x = sp["wall"] / fl["wall"]
                p("| cold %s wall within 1.5x of the floor (%s) | %.2fx (%.2f s vs %.2f s) | %s |" % (tool, img, x, sp["wall"], fl["wall"], verdict(x <= 1.5)))
        g1, z1 = get(tool, "gzip"), get(tool, "zstd")
        if g1 and z1:
            p("| %s: zstd faster than gzip | %.2f s vs %.2f s | %s |" % (tool, z1["wall"], g1["wall"], verdict(z1["wall"] < g1["wall"])))
    for img in ("gzip", "zstd"):
        rl, sp = get("strata pull (rootless)", img), get("strata pull", img)
        if rl and sp:
            x = rl["wall"] / sp["wall"]
            p("| cold rootless strata pull wall within 1.2x of the root pull (%s) | %.2fx (%.2f s vs %.2f s) | %s |" % (img, x, rl["wall"], sp["wall"], verdict(x <= 1.2)))
    sl = get("strata load", "tar")
    loads = [(name, s) for name, s in (("docker load", get("dockerd (docker load)", "tar")),
                                       ("podman load", get("podman load", "tar"))) if s]
    if sl and loads:
        name, fast = min(loads, key=lambda l: l[1]["wall"])
        x = sl["wall"] / fast["wall"]
        p("| strata load wall <= 0.3x the faster of docker load and podman load | %.2fx (%.2f s vs %s %.2f s) | %s |" % (
            x, sl["wall"], name, fast["wall"], verdict(x <= 0.3)))
    if sl:
        p("| strata load peak RSS <= 64 MiB | %.1f MiB | %s |" % (sl["rss"], verdict(sl["rss"] <= 64)))
    w = get("strata pull-and-mount (warm)", "gzip")
    if w:
        p("| warm pull-and-mount <= 30 ms | %.1f ms | %s |" % (w["wall"] * 1000, verdict(w["wall"] <= 0.030)))
    p("| mounting a 200-layer image <= 100 ms | see `bash bench/run.sh --scaling` | n/a here |")
    rss = max([s["rss"] for k, s in S.items() if k[0].startswith("strata") and s["ok"]], default=0)
    p("| strata peak RSS <= 64 MiB | %.1f MiB (max over all strata runs) | %s |" % (rss, verdict(rss <= 64)))
    p("")
    durable = [(img, get("strata pull", img), get("floor + syncfs", img)) for img in ("gzip", "zstd")]
    durable = [(img, sp, fl) for img, sp, fl in durable if sp and fl]
    if durable:
        p("The synced `strata pull` writes every byte to disk before it returns, which the other tools "
          "do not; its own floor is the floor plus one syncfs: %s." % "; ".join(
              "%s %.2fx (%.2f s vs %.2f s)" % (img, sp["wall"] / fl["wall"], sp["wall"], fl["wall"])
              for img, sp, fl in durable))
        p("")
    return "\n".join(out)


def scaling(results, work):
    rows = load(results)
    g = group(rows)
    out = []
    p = out.append
    metas = {}
    for f in os.listdir(work):
        if f.startswith("meta-") and f.endswith(".json"):
            metas[f[5:-5]] = json.load(open(os.path.join(work, f)))
    any_meta = next(iter(metas.values()), {})
    p("# strata benchmark: scaling")
    p("")
    p("- date: %s; kernel %s; %s x %s; strata commit %s" % (any_meta.get("date"), any_meta.get("kernel"),
      any_meta.get("cpu"), any_meta.get("ncpu"), any_meta.get("commit")))
    p("- splitN: the default image's package content flattened and split into N layers of about equal "
      "bytes (each layer carries the parent directories it needs); xK: every layer of the default image "
      "with K copies of its files (same layer count, K times the bytes). Cold `strata pull`, page cache dropped.")
    p("")
    p("| image | layers | tar MiB | entries | comp | runs | wall s | CPU s | s per 100 MiB | peak RSS MiB |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    order = ["split1", "split10", "split50", "split200", "default", "x2", "x4"]
    per = []
    for v in order:
        m = metas.get(v)
        for comp in ("gzip", "zstd"):
            label = comp if v == "default" else "%s/%s" % (v, comp)
            rs = g.get(("strata pull", label))
            if not rs or not m:
                continue
            s = stats(rs)
            if not s["ok"]:
                p("| %s | %d | %.0f | %d | %s | %d | failed | | | |" % (v, m["layers"], m["tar_mib"], m["entries"], comp, s["n"]))
                continue
            spm = s["wall"] / m["tar_mib"] * 100
            per.append((v, comp, spm))
            p("| %s | %d | %.0f | %d | %s | %d | %.3f | %.2f | %.3f | %.1f |" % (
                v, m["layers"], m["tar_mib"], m["entries"], comp, s["ok"], s["wall"], s["cpu"], spm, s["rss"]))
    p("")
    p("| mount (warm pull-and-mount, image present) | layers | runs | median ms | max ms |")
    p("|---|---|---|---|---|")
    mount200 = None
    for v in ["split1", "split10", "split50", "split200", "default"]:
        rs = [r for r in g.get(("strata pull-and-mount (warm)", v), []) if r["exit"] == 0]
        if not rs:
            continue
        m = metas.get(v, {})
        ms = med([r["wall"] for r in rs]) * 1000
        if v == "split200":
            mount200 = ms
        p("| %s | %s | %d | %.1f | %.1f |" % (v, m.get("layers", "?"), len(rs), ms, max(r["wall"] for r in rs) * 1000))
    p("")
    c = [r for r in g.get(("strata pull-and-mount x100", "default"), []) if r["exit"] == 0]
    cj = os.path.join(work, "c100.json")
    if c and os.path.exists(cj):
        d = json.load(open(cj))
        walls = sorted(r["wall"] for r in c)
        p("| 100 containers from one image | value |")
        p("|---|---|")
        p("| created and mounted | %d of 100 (%d overlay mounts seen) |" % (len(c), d["mounted"]))
        p("| time per container: median / p90 / max | %.1f / %.1f / %.1f ms |" % (
            med(walls) * 1000, walls[int(len(walls) * 0.9) - 1] * 1000, walls[-1] * 1000))
        p("| first 10 vs last 10 (median) | %.1f vs %.1f ms |" % (med([r["wall"] for r in c[:10]]) * 1000, med([r["wall"] for r in c[-10:]]) * 1000))
        p("| disk per container (du -x of overlay2/<id>, <id>-init, containers/<id>*) | %.1f KiB |" % (d["du_kib_total"] / max(1, d["containers"])))
        rm = g.get(("strata rm -f x100 (one command)", "default"))
        if rm:
            p("| `strata rm -f` of all 100 (one command) | %.2f s |" % rm[0]["wall"])
        p("")
    p("## Targets")
    p("")
    p("| target | measured | result |")
    p("|---|---|---|")
    if mount200 is not None:
        p("| mounting a 200-layer image <= 100 ms | %.1f ms | %s |" % (mount200, verdict(mount200 <= 100)))
    gz = {v: s for v, c_, s in per if c_ == "gzip"}
    if gz:
        lo, hi = min(gz.values()), max(gz.values())
        p("| time per MiB flat (gzip, all variants within 1.5x of each other) | %.3f .. %.3f s/100 MiB | %s |" % (lo, hi, verdict(hi <= 1.5 * lo)))
    rss = max([stats(rs)["rss"] for k, rs in g.items() if k[0].startswith("strata")], default=0)
    p("| strata peak RSS <= 64 MiB for any image size | %.1f MiB | %s |" % (rss, verdict(rss <= 64)))
    p("")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1] == "default":
        print(default(sys.argv[2], sys.argv[3]))
    else:
        print(scaling(sys.argv[2], sys.argv[3]))
