#!/usr/bin/env python3
"""Markdown report of `bash bench/run.sh --net` (bench/net/net-mode.sh).

usage: report.py NET.jsonl COMMIT STRATA-VERSION DROP-CACHES COMMAND
One table per scenario and image: for each RTT and rate, every tool's median wall and CPU, the
bytes, HTTP requests and connections the proxy saw, the link floor (compressed bytes /
bandwidth) and strata's wall over each other tool's; then the targets of issue 17.
"""
import datetime, json, os, platform, statistics, sys

MIB = 1 << 20
ORDER = ["strata", "strata-nosync", "ctr", "docker"]
LABEL = {"strata": "strata pull", "strata-nosync": "strata pull --no-sync",
         "ctr": "containerd (ctr pull)", "docker": "dockerd (docker pull)"}
SCEN = {"plain": "Docker Hub's shape without auth (blobs 307 to the blob host)",
        "auth": "with token auth (401, token from the realm, then the request)",
        "row": "with token auth, pulled right after another image (pulls in a row)"}


def mbit(rate):
    total, _, conn = rate.partition("/")
    f = lambda s: float(s[:-1]) * (1000 if s.endswith("g") else 1) if s else 0
    return f(total), f(conn)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    path, commit, version, dropped, command = sys.argv[1:6]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    g = {}
    for r in rows:
        g.setdefault((r["scenario"], r["net_image"], int(r["rtt"]), r["rate"], r["tool_key"]), []).append(r)

    def stat(key):
        rs = [r for r in g.get(key, []) if r["exit"] == 0]
        if not rs:
            return None
        return {"n": len(rs), "fail": len(g[key]) - len(rs), "wall": med([r["wall"] for r in rs]),
                "cpu": med([r["cpu"] for r in rs]), "rss": max(r["maxrss_kb"] for r in rs) / 1024,
                "mib": med([r["bytes"] for r in rs]) / MIB, "req": med([r["requests"] for r in rs]),
                "conn": med([r["connections"] for r in rs]), "n401": med([r["n401"] for r in rs]),
                "ranged": med([r["ranged"] for r in rs]), "bytes": int(rows_of(rs)["image_bytes"])}

    def rows_of(rs):
        return rs[0]

    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print("# Network benchmark (issue 17)\n")
    print("%s, kernel %s, %s x %d, commit %s, %s, drop_caches %s. Command: `%s`.\n" % (
        datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), platform.release(),
        cpu, os.cpu_count(), commit, version, dropped, command))
    print("Medians; wall from wait4, CPU = client + daemon tree; MiB, requests and connections "
          "as the shaping proxy saw them (registry + blob host + token realm). Floor = "
          "compressed bytes / total bandwidth. RTT 0 still goes through the proxy.\n")
    scen_imgs = sorted({(k[0], k[1]) for k in g}, key=lambda x: (list(SCEN).index(x[0]), x[1]))
    for sc, img in scen_imgs:
        keys = sorted({(k[2], k[3]) for k in g if k[0] == sc and k[1] == img},
                      key=lambda x: (mbit(x[1]), x[0]))
        tools = [t for t in ORDER if any(k[4] == t for k in g if k[0] == sc and k[1] == img)]
        print("## %s: %s\n" % (img, SCEN.get(sc, sc)))
        print("| RTT ms | rate Mbit/s | tool | wall s | CPU s | peak RSS MiB | MiB | requests | "
              "connections | 401s | Range GETs | floor s | wall / floor | strata / tool |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for rtt, rate in keys:
            s0 = stat((sc, img, rtt, rate, "strata"))
            for t in tools:
                s = stat((sc, img, rtt, rate, t))
                if s is None:
                    continue
                total, _ = mbit(rate)
                floor = s["bytes"] * 8 / (total * 1e6) if total else float("nan")
                ratio = "%.2fx" % (s0["wall"] / s["wall"]) if s0 and t != "strata" else ""
                print("| %d | %s | %s | %.3f | %.2f | %.0f | %.1f | %g | %g | %g | %g | %.2f | %.2f | %s |" % (
                    rtt, rate.replace("g", "000").replace("m", ""), LABEL[t] + (
                        " (%d failed)" % s["fail"] if s["fail"] else ""), s["wall"], s["cpu"],
                    s["rss"], s["mib"], s["req"], s["conn"], s["n401"], s["ranged"], floor,
                    s["wall"] / floor if total else float("nan"), ratio))
        print()

    print("## Targets (issue 17)\n")

    def ratio(sc, img, rtt, rate, other):
        a, b = stat((sc, img, rtt, rate, "strata")), stat((sc, img, rtt, rate, other))
        return None if not a or not b else a["wall"] / b["wall"]

    unmeasured = []

    def check(name, value, limit, what):
        if value is None:
            unmeasured.append(name)
        else:
            print("- %s: %.2f%s (target <= %.2f%s): %s" % (
                name, value, what, limit, what, "PASS" if value <= limit else "FAIL"))

    for rate in sorted({k[3] for k in g}, key=mbit):
        check("alpine at RTT 100 ms, %s, wall vs containerd" % rate,
              ratio("plain", "alpine", 100, rate, "ctr"), 0.75, "x")
        check("alpine with token auth, pulls in a row, RTT 100 ms, %s, vs containerd" % rate,
              ratio("row", "alpine", 100, rate, "ctr"), 0.6, "x")
        check("debian at RTT 100 ms, %s, vs containerd" % rate,
              ratio("plain", "debian", 100, rate, "ctr"), 0.3, "x")
    for rtt in sorted({k[2] for k in g}):
        s = stat(("plain", "bench7", rtt, "100m", "strata"))
        check("bench7 at 100 Mbit/s, RTT %d ms, wall / link floor" % rtt,
              s and s["wall"] / (s["bytes"] * 8 / 100e6), 1.1, "")
        check("bench7 at 100 Mbit/s, RTT %d ms, vs containerd" % rtt,
              ratio("plain", "bench7", rtt, "100m", "ctr"), 0.85, "x")
        for rate in sorted({k[3] for k in g if "/" in k[3]}):
            s = stat(("plain", "big1", rtt, rate, "strata"))
            _, conn = mbit(rate)
            one = s and s["bytes"] * 8 / (conn * 1e6)
            check("big1 under %s Mbit/s per connection, RTT %d ms, wall / one connection's floor"
                  % (int(conn), rtt), s and s["wall"] / one, 1 / 3, "")
    print("\nNot measured in this run (no rows for them): alpine and debian at RTT 100 ms, the "
          "7-layer image at 100 Mbit/s, the 1-layer image under a per-connection cap, where "
          "missing above." if unmeasured else "")


if __name__ == "__main__":
    main()
