// Two people chat in two browsers: sign in, start a direct chat, typing, messages both ways,
// read ticks, unread badges, presence, and a photo with its thumbnail.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { startServer, removeDir, binary } from "./lib/server.mjs";
import { launch, openUser, signIn, waitConn, newDirectChat, openChatWith, send, waitMessages, waitUntil, shoot, tid, closeAll, DESKTOP, PHONE } from "./lib/browser.mjs";
import { makePng } from "./lib/png.mjs";

let server, browser, alice, bob;

before(async () => {
  server = await startServer();
  browser = await launch();
  alice = await openUser(browser, "alice", DESKTOP);
  bob = await openUser(browser, "bob", PHONE);
});

after(async () => {
  await closeAll(browser, [alice, bob].filter(Boolean));
  if (server) { await server.stop(); removeDir(server.dataDir); }
});

const ticksOf = (user, text) => user.page.$eval(
  `xpath=//*[@data-testid="message"][.//*[@data-testid="message-text" and text()="${text}"]]//*[@data-testid="ticks"]`,
  (e) => e.dataset.status);

async function waitTicks(user, text, status, timeout = 10000) {
  await waitUntil(user, `the ticks of "${text}" turning ${status}`, ([t, s]) => {
    const row = [...document.querySelectorAll('[data-testid="message"]')].find((m) => m.querySelector('[data-testid="message-text"]')?.textContent === t);
    return row?.querySelector('[data-testid="ticks"]')?.dataset.status === s;
  }, [text, status], timeout);
}

test("alice and bob chat: messages, typing, read ticks, unread badge, presence", { timeout: 90000 }, async () => {
  await signIn(alice, server.url, { shot: "a0-sign-in" });
  await signIn(bob, server.url);
  await shoot(alice, "a1-signed-in");
  assert.equal(await alice.page.textContent(tid("me-name")), "alice");
  assert.equal(await bob.page.textContent(tid("conn-state")), "sse");

  await newDirectChat(alice, "bob");
  // Bob's list gets the new chat pushed; he opens it.
  await openChatWith(bob, "alice");
  await waitUntil(alice, "bob showing online", () => document.querySelector('[data-testid="presence"]')?.dataset.status === "online");

  // Alice types: bob sees it while she does, and the line goes once she sends.
  await alice.page.click(tid("composer-input"));
  await alice.page.keyboard.type("Hi Bob, lunch today?", { delay: 40 });
  await waitUntil(bob, "the typing line naming alice", () => /alice is typing/.test(document.querySelector('[data-testid="typing"]')?.textContent || ""));
  await shoot(bob, "a2-alice-typing");
  await alice.page.keyboard.press("Enter");
  await waitMessages(bob, ["Hi Bob, lunch today?"]);
  await waitMessages(alice, ["Hi Bob, lunch today?"]);
  await waitUntil(bob, "the typing line clearing", () => (document.querySelector('[data-testid="typing"]')?.textContent || "") === "");
  assert.equal(await bob.page.getAttribute(tid("message"), "data-mine"), "false");
  assert.equal(await alice.page.getAttribute(tid("message"), "data-mine"), "true");

  // Bob has the chat open, so it is read at once: alice's ticks go to read.
  await waitTicks(alice, "Hi Bob, lunch today?", "read");

  await send(bob, "Sure! 12:30 at the usual place?");
  await send(bob, "I'll book a table 🍜");
  const both = ["Hi Bob, lunch today?", "Sure! 12:30 at the usual place?", "I'll book a table 🍜"];
  await waitMessages(alice, both);
  await waitMessages(bob, both);
  await waitTicks(bob, "I'll book a table 🍜", "read");
  await shoot(alice, "a3-conversation");
  await shoot(bob, "a3-conversation");

  // Text is text: markup in a message is shown, never run.
  await send(alice, "<img src=x onerror=alert(1)> <b>bold?</b>");
  await waitMessages(bob, [...both, "<img src=x onerror=alert(1)> <b>bold?</b>"]);
  assert.equal(await bob.page.locator(`${tid("messages")} b`).count(), 0);
  assert.equal(await bob.page.locator(`${tid("message-text")} img`).count(), 0);

  // Bob leaves the chat: alice's next message is delivered but not read, and bob's list shows
  // an unread badge; opening the chat reads it.
  await bob.page.click(tid("back"));
  await bob.page.locator(tid("chat-list")).waitFor({ state: "visible" });
  await send(alice, "See you there");
  await waitTicks(alice, "See you there", "delivered");
  await waitUntil(bob, "an unread badge of 1 on the chat with alice",
    () => document.querySelector('[data-testid="chat-item"][data-title="alice"] [data-testid="unread-badge"]')?.textContent === "1");
  assert.match(await bob.page.textContent(`${tid("chat-item")}[data-title="alice"] ${tid("chat-preview")}`), /See you there/);
  await shoot(bob, "a4-unread");
  assert.equal(await ticksOf(alice, "See you there"), "delivered");
  await openChatWith(bob, "alice");
  await waitTicks(alice, "See you there", "read");
  await waitUntil(bob, "the unread badge going", () => !document.querySelector('[data-testid="chat-item"][data-title="alice"] [data-testid="unread-badge"]'));

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("a photo sent by alice shows as a thumbnail in both pages", { timeout: 60000 }, async () => {
  const png = makePng(360, 240);
  const [chooser] = await Promise.all([alice.page.waitForEvent("filechooser", { timeout: 5000 }), alice.page.click(tid("attach"))]);
  await chooser.setFiles({ name: "sunset.png", mimeType: "image/png", buffer: png });
  for (const user of [alice, bob]) {
    await waitUntil(user, "the photo's thumbnail loading", () => {
      const img = document.querySelector('[data-testid="message"] img[data-testid="message-image"]');
      return img && img.complete && img.naturalWidth > 0;
    }, undefined, 15000);
    const img = await user.page.$eval(`${tid("message")} img${tid("message-image")}`, (i) => ({ src: i.getAttribute("src"), w: i.naturalWidth, h: i.naturalHeight }));
    assert.match(img.src, /^\/v1\/files\/[^/]+\/thumbnail\?token=/);
    assert.ok(img.w > 0 && img.w <= 360, `thumbnail width ${img.w}`);
    assert.equal(Math.round((img.w / img.h) * 10), 15); // 3:2, as sent
    assert.equal(await user.page.locator(tid("pending-message")).count(), 0);
  }
  await waitUntil(alice, "the photo's ticks turning read",
    () => document.querySelector('[data-testid="message"]:last-child [data-testid="ticks"]')?.dataset.status === "read");
  await shoot(alice, "d1-photo");
  await shoot(bob, "d1-photo");
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("alice starts a group: bob gets it with its name and sees who wrote", { timeout: 60000 }, async () => {
  await alice.page.click(tid("new-chat"));
  await alice.page.fill(tid("new-chat-users"), "bob, carol");
  await alice.page.fill(tid("new-chat-name"), "Lunch crew");
  await alice.page.click(tid("new-chat-create"));
  await waitUntil(alice, "the group opening", () => document.querySelector('[data-testid="chat-title"]')?.textContent === "Lunch crew");
  await waitUntil(alice, "the header counting members and who is online",
    () => document.querySelector('[data-testid="presence"]')?.textContent === "3 members, 1 online");
  await send(alice, "Who's in for Friday?");
  await waitMessages(alice, ["Who's in for Friday?"]);
  await bob.page.click(tid("back"));
  await waitUntil(bob, "the group in bob's list with alice's message",
    () => /alice: Who's in for Friday\?/.test(document.querySelector('[data-testid="chat-item"][data-title="Lunch crew"] [data-testid="chat-preview"]')?.textContent || ""));
  await shoot(bob, "a7-group-in-list");
  await openChatWith(bob, "Lunch crew");
  await waitMessages(bob, ["Who's in for Friday?"]);
  await send(bob, "Me!");
  await waitMessages(alice, ["Who's in for Friday?", "Me!"]);
  assert.equal(await alice.page.textContent(`${tid("message")}[data-user="bob"] .author`), "bob");
  await shoot(alice, "a7-group");
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("signing in with a pasted token, and signing out", { timeout: 60000 }, async () => {
  const dave = await openUser(browser, "dave", PHONE);
  try {
    await dave.page.goto(server.url);
    await dave.page.locator(tid("token-input")).waitFor({ state: "visible" });
    // A token the server did not sign is refused on the sign-in screen.
    const forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkYXZlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl";
    await dave.page.fill(tid("token-input"), forged);
    await dave.page.click(tid("token-submit"));
    await waitUntil(dave, "the sign-in error", () => /refused/.test(document.querySelector('[data-testid="signin-error"]')?.textContent || ""));
    assert.equal(await dave.page.isVisible(tid("app")), false);
    await shoot(dave, "a5-token-refused");

    const token = execFileSync(binary, ["token", "--user", "dave", "--data-dir", server.dataDir], { encoding: "utf8" }).trim().split("\n").pop();
    await dave.page.fill(tid("token-input"), token);
    await dave.page.click(tid("token-submit"));
    await dave.page.locator(tid("app")).waitFor({ state: "visible" });
    await waitConn(dave, "sse");
    assert.equal(await dave.page.textContent(tid("me-name")), "dave");
    // Signed in, a reload keeps the session.
    await dave.page.reload();
    await waitConn(dave, "sse");
    assert.equal(await dave.page.textContent(tid("me-name")), "dave");
    await dave.page.click(tid("sign-out"));
    await dave.page.locator(tid("signin")).waitFor({ state: "visible" });
    assert.deepEqual(dave.errors.filter((e) => !/status of 401/.test(e)), []);
  } finally {
    await dave.context.close();
  }
});

test("older messages page in as carol scrolls up, each once and in order", { timeout: 60000 }, async () => {
  // erin writes 130 messages to carol through the API before carol opens the app.
  const token = execFileSync(binary, ["token", "--user", "erin", "--data-dir", server.dataDir], { encoding: "utf8" }).trim().split("\n").pop();
  const call = async (type, data) => {
    const res = await fetch(`${server.url}/v1/${type}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify({ data }) });
    const body = await res.text();
    assert.equal(res.status, 200, `${type}: ${body}`);
    return JSON.parse(body).data;
  };
  const { chat } = await call("createChat", { userIds: ["carol"] });
  const texts = Array.from({ length: 130 }, (_, i) => `note ${String(i + 1).padStart(3, "0")}`);
  for (const batch of [texts.slice(0, 100), texts.slice(100)]) {
    await call("message", { messages: batch.map((text) => ({ clientMessageId: text, chatId: chat.id, text })) });
  }

  const carol = await openUser(browser, "carol", DESKTOP);
  try {
    await signIn(carol, server.url);
    await waitUntil(carol, "130 unread on the chat with erin",
      () => document.querySelector('[data-testid="chat-item"][data-title="erin"] [data-testid="unread-badge"]')?.textContent === "99+");
    await openChatWith(carol, "erin");
    await waitUntil(carol, "the newest page", () => document.querySelectorAll('[data-testid="message"]').length >= 50);
    const first = await carol.page.$$eval('[data-testid="message-text"]', (els) => els.map((e) => e.textContent));
    assert.equal(first[first.length - 1], "note 130");
    assert.ok(first.length < 130, "the chat opened with one page, not everything");
    for (let i = 0; i < 10 && (await carol.page.locator(tid("message")).count()) < 130; i++) {
      await carol.page.$eval(tid("messages"), (box) => { box.scrollTop = 0; box.dispatchEvent(new Event("scroll")); });
      await carol.page.waitForTimeout(300);
    }
    await waitMessages(carol, texts, 5000);
    await waitUntil(carol, "the start-of-chat line", () => /start of the chat/.test(document.querySelector('[data-testid="history-top"]')?.textContent || ""));
    await carol.page.$eval(tid("messages"), (box) => { box.scrollTop = 0; });
    await shoot(carol, "a6-history-paged");
    assert.deepEqual(carol.errors, []);
  } finally {
    await carol.context.close();
  }
});

test("messages restored from the outbox after a reload: a photo shows as one, and each turns sent or not sent", { timeout: 60000 }, async () => {
  const frank = await openUser(browser, "frank", DESKTOP);
  try {
    await signIn(frank, server.url);
    await newDirectChat(frank, "gina");
    const chatId = Number(await frank.page.getAttribute(`${tid("chat-item")}[data-title="gina"]`, "data-chat-id"));
    // An upload of frank's, and the outbox a page closed while offline would leave behind: a
    // photo whose file does not exist (refused for good, 404), and that upload.
    const fileId = await frank.page.evaluate(async () => {
      const { token } = JSON.parse(localStorage.getItem("chinwag.session"));
      const res = await fetch("/v1/files?name=notes.txt", { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "text/plain" }, body: "left behind" });
      return (await res.json()).data.id;
    });
    await frank.context.route("**/v1/message", (route) => route.abort()); // still offline for sends
    await frank.page.evaluate(([key, items]) => localStorage.setItem(key, JSON.stringify(items)), [
      `chinwag:${new URL(server.url).origin}:frank:outbox`,
      [
        { clientMessageId: "restored-bad", chatId, type: "image", text: "", fileId: "no-such-file" },
        { clientMessageId: "restored-ok", chatId, type: "file", text: "", fileId },
      ],
    ]);
    await frank.page.reload();
    await waitConn(frank, "sse");
    await openChatWith(frank, "gina");
    await waitUntil(frank, "both restored messages pending, with a placeholder for their files", () => {
      const rows = [...document.querySelectorAll('[data-testid="pending-message"]')];
      return rows.length === 2 && rows.map((r) => r.querySelector('[data-testid="pending-file"] .file-name')?.textContent).join() === "Photo,File";
    });
    assert.equal(await frank.page.textContent(tid("outbox-count")), "2 queued");
    await shoot(frank, "a8-outbox-restored");

    await frank.context.unroute("**/v1/message");
    await waitUntil(frank, "the refused one marked not sent, the other sent", () => {
      const failed = document.querySelector('[data-testid="pending-message"][data-client-id="restored-bad"] [data-testid="ticks"]');
      const sent = [...document.querySelectorAll('[data-testid="message"]')];
      return failed?.dataset.status === "failed" && document.querySelectorAll('[data-testid="pending-message"]').length === 1 &&
        sent.length === 1 && sent[0].querySelector('[data-testid="message-file"]');
    }, undefined, 20000);
    assert.equal(await frank.page.isHidden(tid("outbox-count")), true);
    assert.match(await frank.page.textContent(tid("toast")), /Not sent/);
    await shoot(frank, "a8-outbox-settled");
    assert.deepEqual(frank.errors.filter((e) => !/net::ERR_FAILED|status of 404/.test(e)), []);
  } finally {
    await frank.context.close();
  }
});
