#!/usr/bin/env python3
"""A shaping HTTP proxy in front of a registry, with Docker Hub's shape (see bench/README.md).

Three listeners, each behind the same simulated link:
  registry  the registry's API, forwarded to --upstream; with --auth it answers 401 with a
            Bearer challenge unless the request carries a token for its repository, with
            --redirect blob GETs are answered 307 to the blob host
  blob      the "CDN": serves /cdn/<repo>/<digest> from the upstream's blob (Range passed on)
  auth      the token realm: GET /token?service=...&scope=... -> {"token": ...}
The link: a one-way delay per direction (--delay-ms, so RTT = 2x), a TCP handshake of one RTT
(the first request of a connection arrives 1.5 RTT after the connect), TCP slow start (a
window of 10 segments doubling every RTT, unless --no-slow-start), and token buckets for the
bytes sent to the client: --conn-mbit per connection and --total-mbit for all connections.
Every request and connection is logged as one JSON line in --log.

usage: shaper.py --upstream HOST:PORT --ports-file FILE --log FILE [--delay-ms N]
                 [--total-mbit N] [--conn-mbit N] [--auth] [--redirect] [--no-slow-start]
"""
import argparse, asyncio, json, os, secrets, time, urllib.parse

CHUNK = 64 * 1024
MSS = 1448
now = time.monotonic


class Bucket:
    """Bytes per second; reserve(n) -> the time the n bytes have left (FIFO reservations)."""

    def __init__(self, rate):
        self.rate, self.free_at = rate, 0.0
        # A little credit for time the sender was idle (waiting on the upstream, the event
        # loop): without it every hiccup is lost link time and the rate falls short.
        self.burst = 4 * CHUNK / rate if rate else 0

    def reserve(self, n):
        if not self.rate:
            return now()
        t = max(now() - self.burst, self.free_at) + n / self.rate
        self.free_at = t
        return t


class Link:
    """The server->client direction of one connection: pacing, slow start, then the delay."""

    def __init__(self, writer, opts, total):
        self.w, self.o, self.total = writer, opts, total
        self.conn = Bucket(opts.conn_mbit * 125_000)
        self.line = asyncio.Queue()
        self.cwnd = 10 * MSS
        self.round_start = None
        self.round_bytes = 0
        self.sent = 0
        self.task = asyncio.ensure_future(self.deliver())

    async def send(self, data, done=None):
        """Queue data; returns once it has left the sender (paced), not once delivered."""
        d = self.o.delay
        for i in range(0, len(data), CHUNK):
            part = data[i:i + CHUNK]
            if d and not self.o.no_slow_start:
                t = now()
                if self.round_start is None:
                    self.round_start = t
                if self.round_bytes + len(part) > self.cwnd and self.round_bytes > 0:
                    # Wait for the acks of this round (one RTT after it began).
                    wake = self.round_start + 2 * d
                    if wake > t:
                        await asyncio.sleep(wake - t)
                    self.round_start = max(wake, now())
                    self.round_bytes = 0
                    self.cwnd *= 2
                self.round_bytes += len(part)
            t_dep = max(self.conn.reserve(len(part)), self.total.reserve(len(part)))
            self.line.put_nowait((t_dep + d, part, None))
            while self.line.qsize() > 256:  # bounded memory when the client reads slowly
                await asyncio.sleep(0.001)
            wait = t_dep - now()
            if wait > 0.002:
                await asyncio.sleep(wait)
        if done is not None:
            self.line.put_nowait((now() + d, b"", done))

    async def deliver(self):
        while True:
            at, part, done = await self.line.get()
            if part is None:
                return
            wait = at - now()
            if wait > 0:
                await asyncio.sleep(wait)
            if part:
                self.w.write(part)
                self.sent += len(part)
                await self.w.drain()
            if done is not None:
                done()

    async def close(self):
        self.line.put_nowait((0, None, None))
        try:
            await self.task
        except (ConnectionError, OSError):
            pass


class Shaper:
    def __init__(self, o):
        self.o = o
        self.total = Bucket(o.total_mbit * 125_000)
        self.log = open(o.log, "a", buffering=1)
        self.conn_ids = 0
        self.tokens = {}  # token -> (scopes, expiry)
        self.ports = {}

    def emit(self, **rec):
        rec["t"] = round(time.time(), 6)
        self.log.write(json.dumps(rec) + "\n")

    async def serve(self, host, reader, writer):
        self.conn_ids += 1
        cid = "%s-%d" % (host, self.conn_ids)
        opened = now()
        link = Link(writer, self.o, self.total)
        up = [None, None]  # upstream reader, writer (kept alive per client connection)
        nreq = 0
        received = 0
        try:
            first = await reader.read(1)
            if first == b"\x16":
                # A TLS ClientHello (a client probing HTTPS on a plain-HTTP registry): answer
                # as a plain HTTP server does, one round trip after the connect.
                await asyncio.sleep(max(0.0, opened + 3 * self.o.delay - now()))
                await link.send(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                self.emit(ev="req", host=host, conn=cid, method="TLS", path="(ClientHello)",
                          status=400, bytes=0, ms=0, ua="")
                nreq += 1
                first = b""
            alive = bool(first)
            while alive:
                try:
                    head = first + await reader.readuntil(b"\r\n\r\n")
                    first = b""
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    break
                t_recv = now()
                received += len(head)
                # The request crosses the link: one-way delay, and at the start of a connection
                # the TCP handshake (one RTT) before the client could send it.
                arrive = max(t_recv + self.o.delay, opened + 3 * self.o.delay)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
                hdrs, pairs = {}, []  # pairs: every header line (Accept comes several times)
                for l in lines[1:]:
                    if ":" in l:
                        k, v = l.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                        pairs.append((k.strip(), v.strip()))
                body = b""
                n = int(hdrs.get("content-length", "0") or 0)
                if n:
                    body = await reader.readexactly(n)
                    received += n
                wait = arrive - now()
                if wait > 0:
                    await asyncio.sleep(wait)
                nreq += 1
                t0 = now()
                rec = {"ev": "req", "host": host, "conn": cid, "method": method, "path": target,
                       "ua": hdrs.get("user-agent", ""), "range": hdrs.get("range")}
                keep = await self.handle(host, method, target, hdrs, pairs, body, link, up, rec)
                rec["ms"] = round((now() - t0) * 1000, 2)
                self.emit(**rec)
                if not keep or hdrs.get("connection", "").lower() == "close":
                    break
        except Exception as e:  # a broken client or upstream: log it, drop the connection
            self.emit(ev="error", host=host, conn=cid, error="%s: %s" % (type(e).__name__, e))
        finally:
            await link.close()
            if up[1] is not None:
                up[1].close()
            self.emit(ev="conn", host=host, conn=cid, requests=nreq, bytes_out=link.sent,
                      bytes_in=received, secs=round(now() - opened, 4))
            try:
                writer.close()
            except OSError:
                pass

    async def respond(self, link, rec, status, reason, headers, body=b"", head_only=False):
        h = "HTTP/1.1 %d %s\r\n" % (status, reason)
        headers = dict(headers)
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            h += "%s: %s\r\n" % (k, v)
        data = (h + "\r\n").encode("latin-1") + (b"" if head_only else body)
        done = asyncio.get_running_loop().create_future()
        await link.send(data, lambda: done.done() or done.set_result(None))
        await done
        rec.update(status=status, bytes=0 if head_only else len(body))
        return True

    def token_ok(self, hdrs, repo):
        a = hdrs.get("authorization", "")
        if not a.startswith("Bearer "):
            return False
        scopes, exp = self.tokens.get(a[7:].strip(), ((), 0))
        return now() < exp and (repo is None or repo in scopes)

    async def handle(self, host, method, target, hdrs, pairs, body, link, up, rec):
        path, _, query = target.partition("?")
        if host == "auth":
            q = urllib.parse.parse_qs(query)
            repos = set()
            for s in q.get("scope", []):
                for one in s.split(" "):
                    parts = one.split(":")
                    if len(parts) >= 3 and parts[0] == "repository":
                        repos.add(parts[1])
            tok = secrets.token_hex(24)
            self.tokens[tok] = (repos, now() + 300)
            doc = json.dumps({"token": tok, "access_token": tok, "expires_in": 300,
                              "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            return await self.respond(link, rec, 200, "OK", {"Content-Type": "application/json"},
                                      doc.encode())
        if host == "blob":
            # /cdn/<repo>/<digest>: the upstream blob, without auth (the URL is the permission).
            if not path.startswith("/cdn/"):
                return await self.respond(link, rec, 404, "Not Found", {})
            repo, _, digest = path[5:].rpartition("/")
            fwd = "/v2/%s/blobs/%s" % (repo, digest)
            keep = [(k, v) for k, v in pairs if k.lower() in ("range", "accept", "user-agent")]
            return await self.forward(method, fwd, keep, b"", link, up, rec)
        # the registry
        repo = None
        if path.startswith("/v2/") and path != "/v2/":
            for kw in ("/manifests/", "/blobs/", "/tags/"):
                if kw in path:
                    repo = path[4:path.index(kw)]
                    break
        if self.o.auth and not self.token_ok(hdrs, repo):
            realm = "http://127.0.0.1:%d/token" % self.ports["auth"]
            ch = 'Bearer realm="%s",service="registry.bench"' % realm
            if repo:
                ch += ',scope="repository:%s:pull"' % repo
            err = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                          "message": "authentication required"}]}).encode()
            return await self.respond(link, rec, 401, "Unauthorized",
                                      {"WWW-Authenticate": ch, "Content-Type": "application/json",
                                       "Docker-Distribution-Api-Version": "registry/2.0"},
                                      err, head_only=method == "HEAD")
        if self.o.redirect and method == "GET" and repo and "/blobs/sha256:" in path:
            digest = path.rsplit("/", 1)[1]
            loc = "http://127.0.0.1:%d/cdn/%s/%s?verify=%s" % (
                self.ports["blob"], repo, digest, secrets.token_hex(8))
            return await self.respond(link, rec, 307, "Temporary Redirect",
                                      {"Location": loc, "Content-Type": "text/html"})
        keep = [(k, v) for k, v in pairs
                if k.lower() not in ("connection", "keep-alive", "authorization", "host")]
        return await self.forward(method, target, keep, body, link, up, rec)

    async def forward(self, method, target, hdrs, body, link, up, rec):
        """Send the request to the upstream (one kept-alive connection per client connection)
        and stream the answer through the link."""
        if up[1] is None:
            up[0], up[1] = await asyncio.open_connection(*self.o.up, limit=1 << 20)
        ur, uw = up
        h = "%s %s HTTP/1.1\r\nHost: %s:%d\r\n" % (method, target, *self.o.up)
        for k, v in hdrs:
            h += "%s: %s\r\n" % (k, v)
        if body and not any(k.lower() == "content-length" for k, _ in hdrs):
            h += "Content-Length: %d\r\n" % len(body)
        uw.write((h + "\r\n").encode("latin-1") + body)
        await uw.drain()
        head = await ur.readuntil(b"\r\n\r\n")
        text = head.decode("latin-1")
        status = int(text.split(" ", 2)[1])
        rh = {}
        for l in text.split("\r\n")[1:]:
            if ":" in l:
                k, v = l.split(":", 1)
                rh[k.strip().lower()] = v.strip()
        await link.send(head)
        sent = 0
        close_after = rh.get("connection", "").lower() == "close"
        if method == "HEAD" or status in (204, 304):
            pass
        elif "content-length" in rh:
            left = int(rh["content-length"])
            while left:
                b = await ur.read(min(left, CHUNK))
                if not b:
                    raise ConnectionError("upstream closed mid-body")
                left -= len(b)
                sent += len(b)
                await link.send(b)
        elif rh.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await ur.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                data = await ur.readexactly(size + 2)
                await link.send(size_line + data)
                sent += size
                if size == 0:
                    break
        else:
            while True:
                b = await ur.read(CHUNK)
                if not b:
                    break
                sent += len(b)
                await link.send(b)
            close_after = True
        done = asyncio.get_running_loop().create_future()
        await link.send(b"", lambda: done.done() or done.set_result(None))
        await done
        if close_after:
            uw.close()
            up[0] = up[1] = None
        rec.update(status=status, bytes=sent)
        return not close_after


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--ports-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--delay-ms", type=float, default=0)
    p.add_argument("--total-mbit", type=float, default=0)
    p.add_argument("--conn-mbit", type=float, default=0)
    p.add_argument("--auth", action="store_true")
    p.add_argument("--redirect", action="store_true")
    p.add_argument("--no-slow-start", action="store_true")
    o = p.parse_args()
    h, port = o.upstream.rsplit(":", 1)
    o.up = (h, int(port))
    o.delay = o.delay_ms / 1000
    s = Shaper(o)
    servers = []
    for host in ("registry", "blob", "auth"):
        srv = await asyncio.start_server(
            lambda r, w, host=host: s.serve(host, r, w), "127.0.0.1", 0, limit=1 << 20)
        s.ports[host] = srv.sockets[0].getsockname()[1]
        servers.append(srv)
    tmp = o.ports_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(s.ports, f)
    os.rename(tmp, o.ports_file)
    s.emit(ev="start", ports=s.ports, delay_ms=o.delay_ms, total_mbit=o.total_mbit,
           conn_mbit=o.conn_mbit, auth=o.auth, redirect=o.redirect)
    await asyncio.gather(*(srv.serve_forever() for srv in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
