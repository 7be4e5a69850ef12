// Behind a proxy that buffers responses, the event stream delivers nothing: the page notices,
// falls back to long-polling within 10 s and loses none of the messages sent meanwhile.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startServer, removeDir } from "./lib/server.mjs";
import { startBufferingProxy } from "./lib/proxy.mjs";
import { launch, openUser, signIn, newDirectChat, openChatWith, send, waitMessages, waitConn, connState, waitUntil, shoot, tid, closeAll, DESKTOP, PHONE } from "./lib/browser.mjs";

let server, proxy, browser, alice, bob;

before(async () => {
  server = await startServer();
  proxy = await startBufferingProxy(server.url);
  browser = await launch();
  alice = await openUser(browser, "alice", DESKTOP);
  bob = await openUser(browser, "bob", PHONE);
});

after(async () => {
  await closeAll(browser, [alice, bob].filter(Boolean));
  if (proxy) await proxy.close();
  if (server) { await server.stop(); removeDir(server.dataDir); }
});

test("behind a buffering proxy the page falls back to long-poll and misses nothing", { timeout: 120000 }, async () => {
  await signIn(alice, server.url);
  await newDirectChat(alice, "bob");
  await send(alice, "before bob came");

  // Bob loads the app through the proxy; every stream he opens is held there.
  const t0 = Date.now();
  await signIn(bob, proxy.url, { transports: null });
  await openChatWith(bob, "alice");
  await waitMessages(bob, ["before bob came"]);

  // Alice writes all through bob's fallback, from his first seconds on the muted stream on.
  const texts = ["before bob came"];
  const sending = (async () => {
    for (let i = 1; i <= 12; i++) {
      const t = `while muted or polling ${i}`;
      texts.push(t);
      await send(alice, t);
      await sleep(800);
    }
  })();
  await waitConn(bob, "poll", Math.max(1000, 10000 - (Date.now() - t0)));
  const fellBackAfter = Date.now() - t0;
  await shoot(bob, "c1-poll");
  await sending;
  await waitMessages(alice, texts);
  await waitMessages(bob, texts, 20000);
  assert.ok(proxy.stats.streamsHeld >= 1, "bob's page opened an event stream through the proxy");
  assert.ok(fellBackAfter <= 10000, `fell back after ${fellBackAfter} ms`);

  // Polling carries receipts and typing too: alice's last message turns read, and bob's page,
  // still on poll, shows alice typing (a live event, never stored), and then the line clears.
  await waitUntil(alice, "alice's last message turning read", () =>
    document.querySelector('[data-testid="message"]:last-child [data-testid="ticks"]')?.dataset.status === "read", undefined, 10000);
  assert.equal(await connState(bob), "poll");
  await alice.page.click(tid("composer-input"));
  await alice.page.keyboard.type("are you", { delay: 40 });
  await waitUntil(bob, "the typing line naming alice, over poll", () => /alice is typing/.test(document.querySelector('[data-testid="typing"]')?.textContent || ""));
  await alice.page.fill(tid("composer-input"), "");
  await waitUntil(bob, "the typing line clearing", () => (document.querySelector('[data-testid="typing"]')?.textContent || "") === "");
  assert.equal(await connState(bob), "poll", "bob was on poll all along");
  await send(bob, "got them all, through the proxy");
  await waitMessages(alice, [...texts, "got them all, through the proxy"], 10000);
  await shoot(bob, "c2-poll-conversation");
  await shoot(alice, "c2-poll-conversation");

  // The page remembers: loaded again through the proxy, it polls without waiting for the stream.
  const streamsBefore = proxy.stats.streamsHeld;
  const t1 = Date.now();
  await bob.page.reload();
  await waitConn(bob, "poll", 4000);
  assert.ok(Date.now() - t1 < 4000);
  assert.equal(proxy.stats.streamsHeld, streamsBefore, "no new stream was tried right after the fallback");
  assert.equal(await bob.page.textContent(tid("conn-state")), "poll");
});
