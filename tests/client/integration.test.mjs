// The client against the real server binary: two clients chatting, a dropped stream resumed,
// the server killed and restarted mid-conversation, a buffering proxy forcing long-poll, an
// image upload, a reset. The binary is CHINWAG_BIN, or target/release/chinwag of the repository;
// without it the tests are skipped (and fail under CI, which must have built it).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import net from "node:net";

import { Chinwag, Cursor, MemoryStorage } from "../../web/chinwag.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = process.env.CHINWAG_BIN || join(ROOT, "target/release/chinwag");
const HAVE_BIN = existsSync(BIN);
if (!HAVE_BIN && process.env.CI) {
  throw new Error(`the server binary ${BIN} is missing: build it (cargo build --release) or set CHINWAG_BIN`);
}
const SKIP = HAVE_BIN ? false : `the server binary ${BIN} is missing: build it with cargo build --release, or set CHINWAG_BIN`;
const PHOTO = join(ROOT, "docs/photo.jpg");

// --- processes, proxies, clients: every one is ended after the tests --------------------------

const servers = new Set();
const closers = new Set();
const clients = new Set();
const dirs = new Set();

after(async () => {
  for (const c of clients) c.stop();
  for (const close of closers) await close();
  for (const s of servers) s.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` is true, checking every 20 ms; fails naming `what` after `ms`. */
async function waitFor(what, cond, ms = 15000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A fresh data directory. */
function dataDir() {
  const d = mkdtempSync(join(tmpdir(), "chinwag-client-"));
  dirs.add(d);
  return d;
}

/** Starts `chinwag serve` on `port` (0: any free one); resolves once it listens. */
function startServer(dir, port = 0) {
  const proc = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  servers.add(proc);
  const exited = new Promise((r) => proc.once("exit", r));
  exited.then(() => servers.delete(proc));
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${log}`)), 15000);
    const onData = (chunk) => {
      log += chunk;
      const m = /listening on http:\/\/([0-9.]+):([0-9]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        proc.stdout.off("data", onData);
        proc.stdout.resume();
        resolve({ proc, port: Number(m[2]), url: `http://127.0.0.1:${m[2]}`, exited, dir });
      }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", (c) => (log += c));
    proc.once("exit", (code) => reject(new Error(`the server exited (${code}):\n${log}`)));
  });
}

/** A client token for `user`, minted by the binary with the server's secret. */
function mint(dir, user) {
  return execFileSync(BIN, ["token", "--user", user, "--data-dir", dir], { encoding: "utf8" }).trim();
}

/** A started client; `events` collects what it delivered, `transports` its transport changes. */
function client(baseUrl, token, options = {}) {
  const c = new Chinwag({ baseUrl, token, firstByteTimeout: 1500, ...options });
  c.events = [];
  c.transports = [];
  c.errors = [];
  c.on("*", (data, event) => c.events.push(event));
  c.on("transport", (t) => c.transports.push(t));
  c.on("error", (e) => c.errors.push(e));
  clients.add(c);
  c.start();
  return c;
}

/** The `message` events a client got for `chatId`. */
const messagesOf = (c, chatId) => c.events.filter((e) => e.type === "message" && e.data.chatId === chatId);

/** Asserts every stored event was delivered once, in ascending id order. */
function assertOnceInOrder(c) {
  const ids = c.events.filter((e) => e.id !== undefined).map((e) => e.id);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `event ids ascend: ${ids.join(",")}`);
}

/** A TCP proxy whose connections the test can cut, as a network that drops does. */
async function cuttingProxy(port) {
  const sockets = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const close = () => new Promise((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  });
  closers.add(close);
  return { url: `http://127.0.0.1:${server.address().port}`, cut: () => sockets.forEach((s) => s.destroy()), close };
}

/**
 * An HTTP proxy that, while `buffering`, holds every answer (status, headers and body) until
 * the upstream answer has ended, as some corporate proxies and antivirus filters do: an SSE
 * stream never gets through, a poll's answer does.
 */
async function bufferingProxy(port) {
  const seen = [];
  const proxy = {
    buffering: true,
    seen,
  };
  const server = http.createServer((req, res) => {
    seen.push(req.url.split("?")[0]);
    const up = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      if (!proxy.buffering) {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
        return;
      }
      const chunks = [];
      upRes.on("data", (c) => chunks.push(c));
      upRes.on("end", () => {
        const body = Buffer.concat(chunks);
        const headers = { ...upRes.headers, "content-length": String(body.length) };
        delete headers["transfer-encoding"];
        res.writeHead(upRes.statusCode, headers);
        res.end(body);
      });
      upRes.on("error", () => res.destroy());
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const close = () => new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  closers.add(close);
  return Object.assign(proxy, { url: `http://127.0.0.1:${server.address().port}`, close });
}

/** A server with alice and bob, their direct chat, and a started client for each. */
async function chatSetup(options = {}) {
  const dir = dataDir();
  const server = await startServer(dir);
  const tokens = { alice: mint(dir, "alice"), bob: mint(dir, "bob") };
  const alice = client(server.url, tokens.alice, options.alice);
  const bob = client(options.bobUrl?.(server) ?? server.url, tokens.bob, options.bob);
  const { chat } = await alice.createChat({ userIds: ["bob"] });
  return { dir, server, tokens, alice, bob, chat };
}

// --- the tests --------------------------------------------------------------------------------

test("two clients chat: messages, typing, read receipts, history, chat list", { skip: SKIP, timeout: 30000 }, async () => {
  const { alice, bob, chat } = await chatSetup();
  await waitFor("both on SSE", () => alice.transport === "sse" && bob.transport === "sse");
  assert.equal(chat.kind, "direct");
  const sent = await alice.send(chat.id, "hello bob");
  assert.equal(sent.text, "hello bob");
  assert.equal(sent.chatId, chat.id);
  await waitFor("bob gets the message", () => messagesOf(bob, chat.id).length === 1);
  assert.equal(messagesOf(bob, chat.id)[0].data.id, sent.id);
  assert.equal(messagesOf(bob, chat.id)[0].data.userId, "alice");

  await bob.typing(chat.id, "typing");
  await waitFor("alice sees bob typing", () => alice.events.some((e) => e.type === "typing" && e.data.userId === "bob"));
  assert.equal(alice.events.find((e) => e.type === "typing").id, undefined, "typing is live");

  await bob.markRead(chat.id, sent.id);
  await waitFor("alice sees the read mark", () =>
    alice.events.some((e) => e.type === "messageStatus" && e.data.status === "read" && e.data.messageId === sent.id && e.data.userId === "bob"),
  );
  const reply = await bob.send(chat.id, "hi alice", { params: { mood: "good" } });
  await waitFor("alice gets the reply", () => messagesOf(alice, chat.id).some((e) => e.data.id === reply.id));

  const page = await bob.history(chat.id, { limit: 10 });
  assert.deepEqual(page.messages.map((m) => m.text), ["hello bob", "hi alice"]);
  assert.deepEqual(page.messages[1].params, { mood: "good" });
  assert.equal(page.hasMore, false);
  const { chats } = await bob.chats();
  assert.deepEqual(chats.map((c) => c.id), [chat.id]);
  assert.equal((await alice.chat(chat.id)).chat.lastMessage.id, reply.id);
  const group = await alice.createChat({ userIds: ["bob", "carol"], name: "Team" });
  assert.equal(group.chat.kind, "group");
  await waitFor("bob is told of the group", () => bob.events.some((e) => e.type === "chat" && e.data.id === group.chat.id));
  // A request the server refuses is a ChinwagError with the server's reason.
  await assert.rejects(alice.history(999999), (e) => e.status === 404 && e.code === "chat_not_found");
  assertOnceInOrder(alice);
  assertOnceInOrder(bob);
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test("a stream dropped twice and resumed delivers every message exactly once, in order", { skip: SKIP, timeout: 60000 }, async () => {
  const dir = dataDir();
  const server = await startServer(dir);
  const proxy = await cuttingProxy(server.port);
  const alice = client(server.url, mint(dir, "alice"));
  const bob = client(proxy.url, mint(dir, "bob"));
  const { chat } = await alice.createChat({ userIds: ["bob"] });
  await waitFor("bob on SSE", () => bob.transport === "sse");
  const sent = [];
  for (let i = 1; i <= 24; i++) {
    sent.push((await alice.send(chat.id, `m${i}`)).id);
    if (i === 8 || i === 16) {
      // The first cut while messages flow; the second once bob is back, so it drops again.
      await waitFor("bob on SSE before the cut", () => bob.transport === "sse", 10000);
      proxy.cut();
      await waitFor("bob notices the drop", () => bob.transport === "offline", 5000);
    }
    await sleep(60);
  }
  await waitFor("bob has all 24", () => messagesOf(bob, chat.id).length >= 24, 20000);
  await sleep(300);
  const got = messagesOf(bob, chat.id);
  assert.deepEqual(got.map((e) => e.data.id), sent, "each message once, in order");
  assert.deepEqual(got.map((e) => e.data.text), sent.map((_, i) => `m${i + 1}`));
  assert.ok(bob.transports.filter((t) => t === "offline").length >= 2, `bob reconnected: ${bob.transports}`);
  assert.equal(bob.transport, "sse");
  assertOnceInOrder(bob);
});

for (const signal of ["SIGKILL", "SIGTERM"]) {
  test(`the server ${signal === "SIGKILL" ? "killed" : "stopped"} and restarted while 30 messages are sent: all 30 arrive once, in order`, { skip: SKIP, timeout: 90000 }, async () => {
    const { server, alice, bob, chat, dir } = await chatSetup();
    await waitFor("both on SSE", () => alice.transport === "sse" && bob.transport === "sse");
    const sends = [];
    let restarted = null;
    for (let i = 1; i <= 30; i++) {
      sends.push(alice.send(chat.id, `n${i}`));
      if (i === 10) {
        server.proc.kill(signal);
        restarted = server.exited.then(async () => {
          await sleep(800);
          return startServer(dir, server.port);
        });
      }
      await sleep(50);
    }
    const second = await restarted;
    assert.equal(second.port, server.port);
    const messages = await Promise.all(sends);
    assert.deepEqual(messages.map((m) => m.text), Array.from({ length: 30 }, (_, i) => `n${i + 1}`));
    await waitFor("bob has all 30", () => messagesOf(bob, chat.id).length >= 30, 30000);
    await sleep(500);
    const got = messagesOf(bob, chat.id);
    assert.deepEqual(got.map((e) => e.data.text), messages.map((m) => m.text), "each once, in the order sent");
    assert.deepEqual(got.map((e) => e.data.id), messages.map((m) => m.id));
    // The server stored each once, though some sends were retried across the restart.
    const page = await bob.history(chat.id, { limit: 100 });
    assert.equal(page.messages.length, 30);
    assert.deepEqual(bob.transports.slice(0, 2), ["sse", "offline"], "bob's stream went down with the server");
    assert.equal(bob.transport, "sse");
    assert.deepEqual(alice.outbox, []);
    assertOnceInOrder(bob);
  });
}

test("a buffering proxy mutes SSE: the client polls within 10 s, loses nothing, remembers, and returns to SSE later", { skip: SKIP, timeout: 60000 }, async () => {
  const dir = dataDir();
  const server = await startServer(dir);
  const proxy = await bufferingProxy(server.port);
  const alice = client(server.url, mint(dir, "alice"));
  const bobToken = mint(dir, "bob");
  const { chat } = await alice.createChat({ userIds: ["bob"] });
  const storage = new MemoryStorage();
  const started = Date.now();
  const bob = client(proxy.url, bobToken, { storage });
  await waitFor("bob has a cursor", () => bob.cursor !== null);
  const early = await alice.send(chat.id, "sent while bob's stream is muted");
  await waitFor("bob on poll", () => bob.transport === "poll", 10000);
  assert.ok(Date.now() - started < 10000, "switched within 10 s");
  assert.ok(proxy.seen.includes("/v1/events"), "SSE was tried first");
  const late = await alice.send(chat.id, "sent while bob polls");
  await waitFor("bob gets both", () => messagesOf(bob, chat.id).length >= 2);
  await sleep(300);
  assert.deepEqual(messagesOf(bob, chat.id).map((e) => e.data.id), [early.id, late.id]);
  assert.deepEqual(bob.transports, ["poll"]);
  const key = `chinwag:${proxy.url}:transport`;
  assert.equal(JSON.parse(storage.getItem(key)).transport, "poll", "remembered for the proxy's origin");
  bob.stop();

  // The next client on the same storage goes straight to poll; with the proxy fixed, it tries
  // SSE again after sseRetryAfter and stays there. sseRetryAfter counts from the remembered
  // switch, however long ago a loaded machine made it: it is set to end 5 s after this start.
  proxy.seen.length = 0;
  proxy.buffering = false;
  const switchedAt = JSON.parse(storage.getItem(key)).at;
  const again = client(proxy.url, bobToken, { storage, sseRetryAfter: Date.now() - switchedAt + 5000 });
  await waitFor("the second client on poll", () => again.transport === "poll");
  assert.deepEqual(proxy.seen.filter((p) => p === "/v1/events"), [], "no SSE before the retry time");
  await waitFor("back on SSE", () => again.transport === "sse", 15000);
  const third = await alice.send(chat.id, "on SSE again");
  await waitFor("the second client gets it", () => messagesOf(again, chat.id).some((e) => e.data.id === third.id));
  assert.deepEqual(messagesOf(again, chat.id).map((e) => e.data.id), [third.id], "nothing replayed twice");
  assert.equal(storage.getItem(key), null, "SSE works again: the fallback is forgotten");
});

test("an image uploaded and sent arrives with its file, which the recipient can download", { skip: SKIP, timeout: 30000 }, async () => {
  const { alice, bob, chat, server, tokens } = await chatSetup();
  await waitFor("bob on SSE", () => bob.transport === "sse");
  const bytes = readFileSync(PHOTO);
  const file = await alice.upload(new Blob([bytes], { type: "image/jpeg" }), { name: "photo.jpg" });
  assert.equal(file.mimeType, "image/jpeg");
  assert.equal(file.title, "photo.jpg");
  assert.equal(file.size, bytes.length);
  assert.ok(file.thumbnail, "an image gets a thumbnail");
  const sent = await alice.send(chat.id, "", { type: "image", fileId: file.id });
  assert.equal(sent.file.id, file.id);
  await waitFor("bob gets the image", () => messagesOf(bob, chat.id).length === 1);
  const got = messagesOf(bob, chat.id)[0].data;
  assert.equal(got.type, "image");
  assert.equal(got.file.id, file.id);
  const auth = { headers: { Authorization: `Bearer ${tokens.bob}` } };
  const download = await fetch(server.url + got.file.url, auth);
  assert.equal(download.status, 200);
  assert.deepEqual(Buffer.from(await download.arrayBuffer()), bytes);
  const thumb = await fetch(server.url + got.file.thumbnail, auth);
  assert.equal(thumb.status, 200);
  assert.match(thumb.headers.get("content-type"), /^image\//);
  // Raw bytes work as well as a Blob.
  const again = await alice.upload(new Uint8Array(bytes), { name: "again.jpg" });
  assert.equal(again.size, bytes.length);
});

test("a cursor this server never gave out gets a reset: the chat list is refetched and the cursor moves", { skip: SKIP, timeout: 30000 }, async () => {
  const dir = dataDir();
  const server = await startServer(dir);
  const alice = client(server.url, mint(dir, "alice"));
  const { chat } = await alice.createChat({ userIds: ["bob"] });
  await alice.send(chat.id, "before");
  const storage = new MemoryStorage();
  new Cursor(storage, `chinwag:${server.url}:bob:cursor`).moveTo(999999);
  const bob = client(server.url, mint(dir, "bob"), { storage });
  assert.equal(bob.cursor, 999999);
  const resets = [];
  bob.on("reset", (data) => resets.push(data));
  await waitFor("bob's reset", () => resets.length === 1);
  assert.deepEqual(resets[0].chats.map((c) => c.id), [chat.id]);
  assert.ok(bob.cursor < 999999, `the cursor moved to the server's present: ${bob.cursor}`);
  const after = await alice.send(chat.id, "after");
  await waitFor("bob gets the next message", () => messagesOf(bob, chat.id).some((e) => e.data.id === after.id));
  assert.deepEqual(messagesOf(bob, chat.id).map((e) => e.data.text), ["after"]);
});
