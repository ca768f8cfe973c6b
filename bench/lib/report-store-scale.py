#!/usr/bin/env python3
"""Markdown report of `bench/run.sh --store-scale` (issue 13).

usage: report-store-scale.py RESULTS.jsonl COUNTS.jsonl N COMMIT VERSION DROP_CACHES_OK
RESULTS: one measure.py record per run (tool = command, image = scene, round = 1.. or "cold");
COUNTS: the root's image/container/mount counts and the prunes' --json output (removed ids).
"""
import datetime, json, os, platform, statistics, sys


def load(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def ms(s):
    return "%.1f" % (s * 1000)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main():
    results, counts_path, n, commit, version, dropped = sys.argv[1:7]
    n = int(n)
    rows = load(results)
    counts = load(counts_path)
    runs = {}
    for r in rows:
        runs.setdefault((r["tool"], r["image"]), []).append(r)

    def warm(tool, scene):
        rs = [r for r in runs.get((tool, scene), []) if r["round"] != "cold"]
        ok = [r for r in rs if r["exit"] == 0]
        return {"n": len(ok), "failed": len(rs) - len(ok), "wall": med([r["wall"] for r in ok]),
                "cpu": med([r.get("client_cpu_wait4", r["client_cpu"]) for r in ok]),
                "rss": max([r["maxrss_kb"] for r in ok], default=0) / 1024,
                "other": med([r.get("other_load", 0) for r in ok])}

    def cold(tool, scene):
        rs = [r for r in runs.get((tool, scene), []) if r["round"] == "cold" and r["exit"] == 0]
        return rs[0]["wall"] if rs else float("nan")

    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    big = "%d images" % n
    out = []
    p = out.append
    p("# strata benchmark: a store of %d images and %d containers (issue 13)" % (n, n))
    p("")
    p("- date: %s; kernel %s; %s x %d" % (datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                                          platform.release(), cpu, os.cpu_count()))
    p("- strata commit: %s (%s)" % (commit, version))
    for c in counts:
        if "counts" in c:
            i, k, m = c["counts"].split()
            p("- root (one fresh ext4 on a loop device): %s images, %s containers, %s of them mounted; "
              "each image a shared base layer + one tiny layer of its own, container k on image k" % (i, k, m))
    p("- warm: median of the runs after the first, page cache warm; cold: the first run, right after "
      "`sync; echo 3 > /proc/sys/vm/drop_caches` (%s). Wall: wait4 around the command; CPU: its rusage "
      "from wait4 (median, warm). "
      "other load: CPU (cores) the rest of the machine used meanwhile (a noise indicator; 2 cores, shared)."
      % ("done" if dropped == "yes" else "not possible here"))
    p("- command: `bash bench/run.sh --store-scale`")
    p("")
    p("## Listings")
    p("")
    p("| command | 1 image: warm ms | %d images + %d containers: warm ms | cold ms | CPU ms | peak RSS MiB | runs | other load |" % (n, n))
    p("|---|---|---|---|---|---|---|---|")
    listings = ["strata images", "strata images -q", "strata ps", "strata system df", "strata system df -v"]
    for t in listings:
        s1, sb = warm(t, "1 image"), warm(t, big)
        p("| `%s` | %s | %s | %s | %s | %.1f | %d%s | %.2f |" % (
            t[len("strata "):], ms(s1["wall"]), ms(sb["wall"]), ms(cold(t, big)), ms(sb["cpu"]), sb["rss"],
            sb["n"], "" if not sb["failed"] else " (+%d failed)" % sb["failed"], sb["other"]))
    for t in ("strata ps", "strata system df"):
        s = warm(t, big + ", all mounted")
        if s["n"]:
            p("| `%s`, all %d containers mounted | | %s | | %s | %.1f | %d | %.2f |" % (
                t[len("strata "):], n, ms(s["wall"]), ms(s["cpu"]), s["rss"], s["n"], s["other"]))
    p("")
    p("## Removing and mounting")
    p("")
    p("| command | scene | median ms | per removed item ms | marginal per item ms | removed | runs |")
    p("|---|---|---|---|---|---|---|")
    w1, wb = warm("strata pull-and-mount (warm)", "1 image"), warm("strata pull-and-mount (warm)", big)
    p("| `pull-and-mount --pull missing` (warm) | 1 image, 1 container | %s (CPU %s) | | | | %d |" % (ms(w1["wall"]), ms(w1["cpu"]), w1["n"]))
    p("| `pull-and-mount --pull missing` (warm) | %d images, %d containers | %s (CPU %s) | | | | %d |" % (n, n, ms(wb["wall"]), ms(wb["cpu"]), wb["n"]))
    rmi = warm("strata rmi", big)
    p("| `rmi` of one image (its own layer goes too) | %d images | %s (CPU %s) | | | 1 | %d |" % (n, ms(rmi["wall"]), ms(rmi["cpu"]), rmi["n"]))
    per = {}
    for kind, tool in (("image", "strata image prune -a -f"), ("container", "strata container prune -f")):
        removed = {}
        for c in counts:
            if c.get("prune") == kind:
                o = c["out"]
                if kind == "image":  # one tag per image; Deleted also names layers
                    got = sum(1 for d in o.get("ImagesDeleted") or [] if ":i" in d.get("Untagged", "")
                              and "@" not in d.get("Untagged", ""))
                else:
                    got = len(o.get("ContainersDeleted") or [])
                removed.setdefault(c["N"], set()).add(got)
        t0 = None
        for N in (0, 10, 100):
            # every run counts: each one removes a fresh N
            rs = [r for r in runs.get((tool, "N=%d" % N), []) if r["exit"] == 0]
            wall = med([r["wall"] for r in rs])
            t0 = wall if N == 0 else t0
            per.setdefault(kind, {})[N] = (wall,)
            p("| `%s` | %d %ss + N more, N = %d | %s | %s | %s | %s | %d |" % (
                tool[len("strata "):], n, kind, N, ms(wall), ms(wall / N) if N else "",
                ms((wall - t0) / N) if N else "", "/".join(str(x) for x in sorted(removed.get(N, []))) or "?",
                len(rs)))
    p("")
    p("Every prune run removes exactly the N items added for it (the `removed` column: the count of ids "
      "in its `--json` output, per run). Marginal per item: (median wall at N - median wall at N = 0) / N.")
    p("")
    p("## Targets")
    p("")
    p("| target | measured | result |")
    p("|---|---|---|")
    for t in ("strata images", "strata images -q", "strata ps"):
        s = warm(t, big)
        p("| `%s` < 50 ms with %d images and containers | %s ms | %s |" % (t[7:], n, ms(s["wall"]), verdict(s["wall"] < 0.050)))
    for t in ("strata system df", "strata system df -v"):
        s = warm(t, big)
        p("| `%s` < 200 ms | %s ms | %s |" % (t[7:], ms(s["wall"]), verdict(s["wall"] < 0.200)))
    for kind in ("image", "container"):
        d = per.get(kind, {})
        if all(k in d for k in (0, 10, 100)):
            t0, t10, t100 = d[0][0], d[10][0], d[100][0]
            # Proportional: what does not depend on N (the scan of the whole store) is small, and
            # 10x the items costs at most 15x the time (nothing quadratic in N).
            p("| %s prune proportional to what it removes: fixed part (N = 0) < 50 ms and t(100) <= 15 t(10) "
              "| t(0) %s ms; t(10) %s ms; t(100) %s ms (%.1fx t(10)); %s ms per removed %s at N = 100 | %s |" % (
                  kind, ms(t0), ms(t10), ms(t100), t100 / t10, ms(t100 / 100), kind,
                  verdict(t0 < 0.050 and t100 <= 15 * t10)))
    x = wb["wall"] / w1["wall"] if w1["wall"] else float("nan")
    p("| warm pull-and-mount as fast as with few containers (<= 1.5x), <= 30 ms | %s ms vs %s ms (%.2fx) | %s |" % (
        ms(wb["wall"]), ms(w1["wall"]), x, verdict(x <= 1.5 and wb["wall"] <= 0.030)))
    p("")
    p("The issue gives no number for \"proportional\": the benchmark reads it as a fixed part (what a prune "
      "costs with nothing to remove) within a listing's 50 ms, and no growth faster than linear.")
    p("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
