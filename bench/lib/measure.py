#!/usr/bin/env python3
"""Run one command and record what the OS says it cost.

usage: measure.py --out FILE.jsonl --tool T --image I [--round R] [--daemon PID]...
                  [--log FILE] [--stdout FILE] -- CMD ARGS...

wall   : monotonic clock around fork/exec .. wait4
client : rusage of the command from wait4 via GNU time (incl. every descendant it waited for):
         utime+stime, maxrss (the largest single process)
daemon : for each --daemon PID, the CPU of its whole process tree (utime+stime+cutime+cstime of
         the daemon and every live descendant, from /proc/<pid>/stat) after the run minus before
other_load: CPU-seconds the rest of the machine used during the run / wall (cores); before the
         run it waits (--quiet-wait s, default 10) for the machine to be nearly idle.
Appends one JSON object per run to --out and prints it on stdout.
"""
import argparse, json, os, subprocess, sys, tempfile, time

TCK = os.sysconf("SC_CLK_TCK")


def proc_table():
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        t[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return t


def tree_cpu(root):
    t = proc_table()
    children = {}
    for pid, (ppid, _) in t.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        if p in t:
            total += t[p][1]
        stack.extend(children.get(p, []))
    return total / TCK


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v[:8]) - idle


def wait_quiet(max_wait, threshold):
    """Wait (at most max_wait s) until the machine's other load is below threshold cores."""
    t_end = time.monotonic() + max_wait
    while True:
        b0, t0 = busy_jiffies(), time.monotonic()
        time.sleep(0.5)
        load = (busy_jiffies() - b0) / TCK / (time.monotonic() - t0)
        if load < threshold or time.monotonic() >= t_end:
            return load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--round", default="")
    ap.add_argument("--daemon", type=int, action="append", default=[])
    ap.add_argument("--log", default="/dev/null")
    ap.add_argument("--stdout", default="/dev/null")
    ap.add_argument("--quiet-wait", type=float, default=float(os.environ.get("BENCH_QUIET_WAIT", "10")),
                    help="wait up to this many seconds for the machine to be idle first")
    ap.add_argument("--quiet-threshold", type=float, default=0.25, help="cores busy counted as idle")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    load_before = wait_quiet(a.quiet_wait, a.quiet_threshold) if a.quiet_wait > 0 else None
    before = [tree_cpu(d) for d in a.daemon]
    sys0 = busy_jiffies()
    # GNU time (a small C program) forks and execs the command and reports its rusage: going
    # through it keeps python's own RSS out of the child's maxrss (a child's high-water mark
    # includes the memory it had before exec).
    fd, tfile = tempfile.mkstemp(prefix="measure.")
    os.close(fd)
    with open(a.log, "ab") as log, open(a.stdout, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", tfile, "--"] + cmd,
                             stdout=out, stderr=log, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    try:
        u, s_, m = open(tfile).read().split()[-3:]
        ru_client, maxrss = float(u) + float(s_), int(m)
    except (ValueError, OSError):  # time did not report (e.g. killed): fall back on wait4's
        ru_client, maxrss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    os.unlink(tfile)
    sys1 = busy_jiffies()
    after = [tree_cpu(d) for d in a.daemon]
    daemon = sum(x - y for x, y in zip(after, before))
    client = ru_client
    rec = {"tool": a.tool, "image": a.image, "round": a.round, "wall": round(wall, 4),
           "client_cpu": round(client, 3), "daemon_cpu": round(daemon, 3),
           "cpu": round(client + daemon, 3), "maxrss_kb": maxrss,
           # wait4's rusage of GNU time and the command (microseconds, where time's own
           # figures step by 10 ms): for commands of a few ms
           "client_cpu_wait4": round(ru.ru_utime + ru.ru_stime, 6),
           "exit": p.returncode,
           # CPU the rest of the machine used during the run, in cores (noise indicator)
           "other_load": round(max(0.0, (sys1 - sys0) / TCK - client - daemon) / wall, 2),
           "load_before": None if load_before is None else round(load_before, 2)}
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
