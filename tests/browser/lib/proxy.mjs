// A proxy that buffers every response: it sends nothing of a response until the upstream
// response has ended. Plain requests and long-polls pass (late, but whole); an SSE stream, which
// never ends, delivers nothing at all. This is what some corporate proxies and antivirus
// gateways do to event streams.
import http from "node:http";

export function startBufferingProxy(upstream) {
  const target = new URL(upstream);
  const stats = { requests: 0, streamsHeld: 0, open: 0 };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    stats.requests++;
    stats.open++;
    const isStream = req.url.startsWith("/v1/events");
    if (isStream) stats.streamsHeld++;
    const headers = { ...req.headers, host: target.host };
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (upRes) => {
      const chunks = [];
      upRes.on("data", (c) => chunks.push(c));
      upRes.on("end", () => {
        const h = { ...upRes.headers };
        delete h["transfer-encoding"];
        delete h["content-length"];
        delete h.connection;
        const body = Buffer.concat(chunks);
        h["content-length"] = String(body.length);
        res.writeHead(upRes.statusCode, h);
        res.end(body);
      });
      upRes.on("error", () => res.destroy());
    });
    up.on("error", () => { if (!res.headersSent) { res.writeHead(502, { "content-type": "text/plain" }); res.end("upstream unreachable"); } else res.destroy(); });
    req.pipe(up);
    // The browser gave up (a muted stream it abandons): drop the upstream request with it.
    res.on("close", () => { stats.open--; up.destroy(); });
  });
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        stats,
        close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
      });
    });
  });
}
