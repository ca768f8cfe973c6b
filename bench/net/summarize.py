#!/usr/bin/env python3
"""Join one measured run with what the shaping proxy saw during it.

usage: summarize.py PROXY.log RESULTS.jsonl NET.jsonl KEY=VALUE...
Takes the last run of RESULTS.jsonl (written by lib/measure.py), adds the KEY=VALUE fields
(scenario, rtt, rate, ...) and the proxy's counts: HTTP requests and connections per host
(registry, blob, auth), bytes sent to the client, 401s, 307s; appends it to NET.jsonl and
prints a one-line summary on stderr.
"""
import json, sys


def main():
    log, results, out = sys.argv[1:4]
    run = [json.loads(l) for l in open(results) if l.strip()][-1]
    for kv in sys.argv[4:]:
        k, v = kv.split("=", 1)
        run[k] = v
    reqs = {"registry": 0, "blob": 0, "auth": 0}
    conns = dict(reqs)
    sent = 0
    n401 = n307 = ranged = 0
    for line in open(log):
        r = json.loads(line)
        if r.get("ev") == "req":
            reqs[r["host"]] += 1
            n401 += r.get("status") == 401
            n307 += r.get("status") == 307
            ranged += bool(r.get("range"))
        elif r.get("ev") == "conn":
            # Connections that carried no request (probes the tool gave up on) are counted
            # too: each cost a handshake.
            conns[r["host"]] += 1
            sent += r.get("bytes_out", 0)
    run.update(requests=sum(reqs.values()), requests_by_host=reqs,
               connections=sum(conns.values()), connections_by_host=conns,
               bytes=sent, n401=n401, n307=n307, ranged=ranged)
    with open(out, "a") as f:
        f.write(json.dumps(run) + "\n")
    print("     proxy: %d requests (%s), %d connections, %.1f MiB, %d x 401, %d x 307, %d ranged"
          % (run["requests"], ", ".join("%s %d" % kv for kv in reqs.items()), run["connections"],
             sent / 2**20, n401, n307, ranged), file=sys.stderr)


if __name__ == "__main__":
    main()
