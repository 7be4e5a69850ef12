// The server is killed and restarted (same port, same data) while alice keeps sending: what
// she sends meanwhile waits in the outbox, and both pages end with every message exactly once,
// in order.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startServer, removeDir, tempDataDir } from "./lib/server.mjs";
import { launch, openUser, signIn, newDirectChat, openChatWith, send, waitMessages, waitConn, waitUntil, shoot, tid, closeAll, DESKTOP, PHONE } from "./lib/browser.mjs";

let server, browser, alice, bob;
const dataDir = tempDataDir();

before(async () => {
  server = await startServer({ dataDir });
  browser = await launch();
  alice = await openUser(browser, "alice", DESKTOP);
  bob = await openUser(browser, "bob", PHONE);
});

after(async () => {
  await closeAll(browser, [alice, bob].filter(Boolean));
  if (server) await server.stop();
  removeDir(dataDir);
});

async function restartOnSamePort(port) {
  // The old process is gone; its port is free again at once, but allow the kernel a moment.
  let lastError;
  for (let attempt = 0; attempt < 20; attempt++) {
    try { return await startServer({ dataDir, port }); } catch (e) { lastError = e; await sleep(250); }
  }
  throw lastError;
}

test("messages sent across a server restart arrive once each, in order", { timeout: 120000 }, async () => {
  await signIn(alice, server.url);
  await signIn(bob, server.url);
  await newDirectChat(alice, "bob");
  await openChatWith(bob, "alice");

  const texts = Array.from({ length: 20 }, (_, i) => `message ${String(i + 1).padStart(2, "0")}`);
  const port = server.port;

  // 1–5 while the server runs; it is killed right after 5 is sent, without waiting for it.
  for (const t of texts.slice(0, 5)) { await send(alice, t); await sleep(120); }
  await server.kill();
  await waitConn(alice, "offline", 10000);
  await waitConn(bob, "offline", 10000);

  // 6–15 during the outage: they wait in alice's outbox, shown as pending.
  for (const t of texts.slice(5, 15)) { await send(alice, t); await sleep(60); }
  await waitUntil(alice, "messages waiting in the outbox",
    () => document.querySelectorAll('[data-testid="pending-message"]').length >= 10);
  assert.equal(await alice.page.getAttribute(tid("conn-state"), "data-state"), "offline");
  await shoot(alice, "b1-outage");

  server = await restartOnSamePort(port);
  // 16–20 right after the restart, while the clients are still reconnecting.
  for (const t of texts.slice(15)) { await send(alice, t); await sleep(120); }

  await waitConn(alice, "sse", 30000);
  await waitConn(bob, "sse", 30000);
  await waitMessages(alice, texts, 30000);
  await waitMessages(bob, texts, 30000);
  await waitUntil(alice, "the outbox emptying", () => document.querySelectorAll('[data-testid="pending-message"]').length === 0, undefined, 15000);
  // Once more after things settle: no duplicate turned up late.
  await sleep(1500);
  await waitMessages(alice, texts, 1000);
  await waitMessages(bob, texts, 1000);
  const ids = await bob.page.$$eval(tid("message"), (els) => els.map((e) => Number(e.dataset.id)));
  assert.equal(new Set(ids).size, 20);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  await shoot(alice, "b2-after-restart");
  await shoot(bob, "b2-after-restart");

  // And the server holds them once each: a reload of bob's page shows the same 20 from history.
  await bob.page.reload();
  await waitConn(bob, "sse", 10000);
  await openChatWith(bob, "alice");
  await waitMessages(bob, texts, 10000);
});
