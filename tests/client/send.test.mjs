// Sending: which failures are retried (network, 5xx, 429 after Retry-After) and which are not,
// every retry with the same clientMessageId, the order kept, the outbox kept in storage (queued
// before any token is at hand), and the events that tell what became of each message.
import assert from "node:assert/strict";

import { Chinwag, ChinwagError, Outbox, isRetryable } from "../../web/chinwag.js";
import { FakeClock, FakeStorage, failure, fakeFetch, json, settle, test, tokenFor } from "./fakes.mjs";

const stored = (m, id) => ({ id, ...m, status: "sent", userId: "alice" });

/** A client whose /v1/message answers come from `answer(message, attempt)`; not started. */
function sender(answer, { storage = new FakeStorage(), token = tokenFor("alice"), getToken, userId } = {}) {
  const clock = new FakeClock();
  const attempts = [];
  let nextId = 100;
  const { fetch, calls } = fakeFetch((call) => {
    if (call.path !== "/v1/message") throw new Error(`unexpected ${call.path}`);
    const m = call.body.data.messages[0];
    attempts.push({ at: clock.now(), clientMessageId: m.clientMessageId, text: m.text, auth: call.headers.authorization });
    const got = answer(m, attempts.filter((a) => a.clientMessageId === m.clientMessageId).length, call);
    return got ?? json(200, { type: "message", data: { messages: [stored(m, nextId++)], users: [] } });
  });
  const client = new Chinwag({ baseUrl: "http://chat.test", token: getToken ? undefined : token, getToken, userId, fetch, clock, storage, random: () => 0 });
  return { client, clock, attempts, calls, storage };
}

test("isRetryable: no answer, 5xx, 408 and 429 are retried; every other status is not", () => {
  const e = (status) => new ChinwagError({ status, code: "x" });
  for (const s of [0, 408, 429, 500, 502, 503, 504, 507]) assert.equal(isRetryable(e(s)), true, `status ${s}`);
  for (const s of [400, 401, 403, 404, 409, 413]) assert.equal(isRetryable(e(s)), false, `status ${s}`);
  assert.equal(isRetryable(new Error("not ours")), false);
});

test("network errors and 5xx are retried with backoff and the same clientMessageId", async () => {
  const t = sender((m, attempt) => {
    if (attempt === 1) throw new TypeError("fetch failed");
    if (attempt === 2) return failure(500, "server_error");
    if (attempt === 3) return failure(503, "unavailable", { "retry-after": "5" });
    return undefined;
  });
  const sent = t.client.send(1, "hello", { clientMessageId: "c-1", params: { k: "v" } });
  await t.clock.advance(60000);
  const message = await sent;
  assert.equal(message.id, 100);
  assert.equal(message.clientMessageId, "c-1");
  assert.deepEqual(t.attempts.map((a) => a.clientMessageId), ["c-1", "c-1", "c-1", "c-1"]);
  const start = t.attempts[0].at;
  // 1 s, 2 s, then at least the 5 s the 503 asked for.
  assert.deepEqual(t.attempts.map((a) => a.at - start), [0, 1000, 3000, 8000]);
  assert.deepEqual(t.calls[0].body, {
    type: "message",
    data: { messages: [{ clientMessageId: "c-1", chatId: 1, text: "hello", params: { k: "v" } }] },
  });
  assert.deepEqual(t.client.outbox, []);
});

test("a generated clientMessageId is kept across retries", async () => {
  const t = sender((m, attempt) => (attempt < 3 ? failure(502, "http_error") : undefined));
  const sent = t.client.send(1, "hi");
  await t.clock.advance(10000);
  await sent;
  assert.equal(t.attempts.length, 3);
  assert.ok(t.attempts[0].clientMessageId.length >= 8);
  assert.equal(new Set(t.attempts.map((a) => a.clientMessageId)).size, 1);
});

test("429 waits for its Retry-After, even when the connection comes back meanwhile", async () => {
  const t = sender((m, attempt) => (attempt === 1 ? failure(429, "rate_limited", { "retry-after": "7" }) : undefined));
  const sent = t.client.send(1, "hi", { clientMessageId: "r" });
  await t.clock.advance(6999);
  assert.equal(t.attempts.length, 1);
  t.client._setTransport("sse"); // a connection coming back does not cut a rate limit short
  await t.clock.advance(1);
  assert.equal(t.attempts.length, 2);
  await sent;
});

test("a network failure is retried as soon as the connection is back", async () => {
  const t = sender((m, attempt) => (attempt <= 3 ? Promise.reject(new TypeError("fetch failed")) : undefined));
  const sent = t.client.send(1, "hi", { clientMessageId: "b" });
  await t.clock.advance(3000); // attempts at 0, 1 s, 3 s; the next would wait 4 s
  assert.equal(t.attempts.length, 3);
  t.client._setTransport("poll");
  await settle();
  assert.equal(t.attempts.length, 4);
  await sent;
});

test("other 4xx reject at once, are not retried, and leave the outbox", async () => {
  for (const [status, reason] of [[400, "bad_request"], [403, "forbidden"], [404, "chat_not_found"], [409, "chat_closed"], [413, "payload_too_large"]]) {
    const t = sender(() => failure(status, reason));
    const outboxes = [];
    t.client.on("outbox", (o) => outboxes.push(o.length));
    const sent = t.client.send(1, "x", { clientMessageId: `f-${status}` });
    const err = await sent.then(() => null, (e) => e);
    assert.ok(err instanceof ChinwagError, `${status} rejects with a ChinwagError`);
    assert.equal(err.status, status);
    assert.equal(err.code, reason);
    await t.clock.advance(60000);
    assert.equal(t.attempts.length, 1, `${status} is not retried`);
    assert.deepEqual(t.client.outbox, []);
    assert.deepEqual(outboxes, [1, 0]);
  }
});

test("messages go out one at a time in the order sent; a failing head holds the rest back", async () => {
  const t = sender((m, attempt) => (m.text === "one" && attempt <= 2 ? failure(503, "unavailable", { "retry-after": "1" }) : undefined));
  const results = [];
  const all = ["one", "two", "three"].map((text) => t.client.send(1, text).then((m) => results.push(m.text)));
  await settle();
  assert.deepEqual(t.client.outbox.map((m) => m.text), ["one", "two", "three"]);
  await t.clock.advance(10000);
  await Promise.all(all);
  assert.deepEqual(t.attempts.map((a) => a.text), ["one", "one", "one", "two", "three"]);
  assert.deepEqual(results, ["one", "two", "three"]);
});

test("the same clientMessageId sent twice while pending is one message", async () => {
  const t = sender((m, attempt) => (attempt === 1 ? failure(500, "server_error") : undefined));
  const a = t.client.send(1, "dup", { clientMessageId: "same" });
  const b = t.client.send(1, "dup", { clientMessageId: "same" });
  await settle();
  assert.equal(t.client.outbox.length, 1);
  await t.clock.advance(2000);
  const [ma, mb] = await Promise.all([a, b]);
  assert.equal(ma.id, mb.id);
  assert.equal(t.attempts.length, 2);
});

test("Outbox keeps its messages in storage, oldest first", () => {
  const storage = new FakeStorage();
  const o = new Outbox(storage, "ob");
  o.add({ clientMessageId: "a", chatId: 1, text: "1" });
  o.add({ clientMessageId: "b", chatId: 1, text: "2" });
  assert.deepEqual(new Outbox(storage, "ob").items.map((m) => m.clientMessageId), ["a", "b"]);
  o.remove("a");
  assert.deepEqual(new Outbox(storage, "ob").items.map((m) => m.clientMessageId), ["b"]);
  o.remove("b");
  assert.equal(storage.getItem("ob"), null, "an empty outbox leaves nothing behind");
  storage.setItem("ob", "not json");
  assert.deepEqual(new Outbox(storage, "ob").items, []);
});

test("an unsent message survives the client: the next client on the same storage sends it, same id", async () => {
  const storage = new FakeStorage();
  const offline = sender(() => Promise.reject(new TypeError("fetch failed")), { storage });
  const lost = offline.client.send(7, "while offline", { clientMessageId: "keep-me" });
  await offline.clock.advance(5000);
  assert.ok(offline.attempts.length >= 2);
  assert.deepEqual(storage.find(":alice:outbox"), [{ clientMessageId: "keep-me", chatId: 7, text: "while offline" }]);
  offline.client.stop(); // the page is closed; its promise never settles
  const attemptsWhenStopped = offline.attempts.length;
  await offline.clock.advance(60000);
  assert.equal(offline.attempts.length, attemptsWhenStopped, "a stopped client sends nothing");
  void lost;

  const next = sender(() => undefined, { storage });
  assert.deepEqual(next.client.outbox.map((m) => m.clientMessageId), ["keep-me"]);
  const outboxes = [];
  next.client.on("outbox", (o) => outboxes.push(o.length));
  next.client._pump(); // what start() does (without opening a stream here)
  await settle();
  assert.deepEqual(next.attempts.map((a) => a.clientMessageId), ["keep-me"]);
  assert.deepEqual(outboxes, [0]);
  assert.equal(storage.find(":alice:outbox"), undefined);
});

test("outboxes are per user: another user's client on the same storage does not send them", async () => {
  const storage = new FakeStorage();
  const alice = sender(() => Promise.reject(new TypeError("fetch failed")), { storage });
  alice.client.send(7, "from alice", { clientMessageId: "a1" });
  await settle();
  alice.client.stop();
  const bob = sender(() => undefined, { storage, token: tokenFor("bob") });
  assert.deepEqual(bob.client.outbox, []);
  assert.equal(bob.client.userId, "bob");
});

test("a 401 with getToken: a new token, and the send goes through", async () => {
  const tokens = [tokenFor("alice", "old"), tokenFor("alice", "new")];
  let asked = 0;
  const t = sender((m, attempt, call) => (call.headers.authorization.endsWith("old") ? failure(401, "token_invalid") : undefined), {
    getToken: () => tokens[asked++],
  });
  const m = await t.client.send(1, "hi", { clientMessageId: "t" });
  assert.equal(m.clientMessageId, "t");
  assert.equal(asked, 2);
  assert.deepEqual(t.attempts.map((a) => a.auth.slice(-3)), ["old", "new"]);
});

test("a 401 with a fixed token rejects the send but keeps it in the outbox for a client with a good token", async () => {
  const storage = new FakeStorage();
  const t = sender(() => failure(401, "token_invalid"), { storage });
  const errors = [];
  t.client.on("error", (e) => errors.push(e));
  const err = await t.client.send(1, "hi", { clientMessageId: "k" }).then(() => null, (e) => e);
  assert.equal(err.status, 401);
  assert.equal(errors.length, 1);
  assert.equal(t.client.transport, "offline");
  await t.clock.advance(60000);
  assert.equal(t.attempts.length, 1);
  assert.deepEqual(storage.find(":alice:outbox").map((m) => m.clientMessageId), ["k"]);
  await assert.rejects(t.client.send(1, "again"), (e) => e.status === 401);
});

test("offline at start with getToken: send queues the message and sends it once a token comes", async () => {
  let online = false;
  let asked = 0;
  const getToken = async () => {
    asked += 1;
    if (!online) throw new TypeError("fetch failed"); // the app's token endpoint is unreachable
    return tokenFor("alice");
  };
  const t = sender(() => undefined, { getToken });
  const outboxes = [];
  t.client.on("outbox", (o) => outboxes.push(o.map((m) => m.clientMessageId)));
  let settled = null;
  const sent = t.client.send(3, "written offline", { clientMessageId: "early" }).then(
    (m) => (settled = { m }),
    (e) => (settled = { e }),
  );
  assert.deepEqual(t.client.outbox, [{ clientMessageId: "early", chatId: 3, text: "written offline" }], "queued at once");
  assert.deepEqual(outboxes, [["early"]]);
  await t.clock.advance(10000);
  assert.equal(settled, null, "kept, not rejected, while there is no token");
  assert.ok(asked >= 2, `getToken asked again with backoff: ${asked}`);
  assert.equal(t.attempts.length, 0);
  assert.equal(t.client.userId, null);

  online = true;
  t.client._setTransport("poll"); // the connection is back: the wait is cut short
  await settle();
  await sent;
  assert.equal(settled.m.clientMessageId, "early");
  assert.deepEqual(t.attempts.map((a) => a.clientMessageId), ["early"]);
  assert.equal(t.client.userId, "alice");
  assert.deepEqual(t.client.outbox, []);
  assert.deepEqual(outboxes.at(-1), []);
  assert.equal(t.storage.find(":alice:outbox"), undefined);
});

test("before the user is known, queued messages join the user's stored outbox after what it restored", async () => {
  const storage = new FakeStorage();
  const before = sender(() => Promise.reject(new TypeError("fetch failed")), { storage });
  before.client.send(1, "from last time", { clientMessageId: "old" });
  await settle();
  before.client.stop();

  let online = false;
  const t = sender(() => undefined, { storage, getToken: async () => (online ? tokenFor("alice") : Promise.reject(new TypeError("fetch failed"))) });
  t.client.send(1, "new", { clientMessageId: "new" });
  await settle();
  assert.deepEqual(t.client.outbox.map((m) => m.clientMessageId), ["new"], "the user's outbox is not known yet");
  online = true;
  t.client._setTransport("poll");
  await settle();
  assert.deepEqual(t.attempts.map((a) => a.clientMessageId), ["old", "new"]);
  assert.deepEqual(t.client.outbox, []);
});

test("with userId and storage, a message sent before any token is stored at once", async () => {
  const storage = new FakeStorage();
  const t = sender(() => undefined, { storage, userId: "alice", getToken: () => Promise.reject(new TypeError("fetch failed")) });
  t.client.send(4, "keep me", { clientMessageId: "k1" });
  assert.deepEqual(storage.find(":alice:outbox"), [{ clientMessageId: "k1", chatId: 4, text: "keep me" }]);
  await t.clock.advance(5000);
  assert.deepEqual(storage.find(":alice:outbox").map((m) => m.clientMessageId), ["k1"]);
  t.client.stop();
});

test("getToken failing after a 401 keeps the message: it is sent with the next token", async () => {
  let asked = 0;
  const getToken = async () => {
    asked += 1;
    if (asked === 1) return tokenFor("alice", "old");
    if (asked === 2) throw new ChinwagError({ status: 403, code: "forbidden" }); // the app's backend says no, for now
    return tokenFor("alice", "new");
  };
  const t = sender((m, attempt, call) => (call.headers.authorization.endsWith("old") ? failure(401, "token_invalid") : undefined), { getToken });
  const sent = t.client.send(1, "hi", { clientMessageId: "g" });
  await t.clock.advance(5000);
  const m = await sent;
  assert.equal(m.clientMessageId, "g");
  assert.deepEqual(t.attempts.map((a) => a.auth.slice(-3)), ["old", "new"]);
});

test("outboxSent and outboxFailed tell what became of each message, restored ones included, before outbox", async () => {
  const storage = new FakeStorage();
  const before = sender(() => Promise.reject(new TypeError("fetch failed")), { storage });
  before.client.send(1, "will fail", { clientMessageId: "bad" });
  before.client.send(1, "will go", { clientMessageId: "good" });
  await settle();
  before.client.stop();

  // The next page load: nobody holds a promise for these two, only the events tell.
  const t = sender((m) => (m.clientMessageId === "bad" ? failure(409, "chat_closed") : undefined), { storage });
  const seen = [];
  t.client.on("outboxSent", (item, message) => seen.push(["sent", item, message.id, message.clientMessageId]));
  t.client.on("outboxFailed", (item, err) => seen.push(["failed", item, err.status, err.code]));
  t.client.on("outbox", (o) => seen.push(["outbox", o.length]));
  t.client._pump();
  await settle();
  assert.deepEqual(seen, [
    ["failed", { clientMessageId: "bad", chatId: 1, text: "will fail" }, 409, "chat_closed"],
    ["outbox", 1],
    ["sent", { clientMessageId: "good", chatId: 1, text: "will go" }, 100, "good"],
    ["outbox", 0],
  ]);
  // Retried failures are not given up: no event until the message leaves the outbox.
  const r = sender((m, attempt) => (attempt < 3 ? failure(503, "unavailable") : undefined));
  const events = [];
  r.client.on("outboxSent", (item) => events.push(`sent ${item.clientMessageId}`));
  r.client.on("outboxFailed", (item) => events.push(`failed ${item.clientMessageId}`));
  const sent = r.client.send(1, "x", { clientMessageId: "later" });
  await r.clock.advance(1000);
  assert.deepEqual(events, []);
  await r.clock.advance(10000);
  await sent;
  assert.deepEqual(events, ["sent later"]);
});

test("a host event named outboxSent or outboxFailed reaches only * listeners", () => {
  const t = sender(() => undefined);
  const got = [];
  t.client.on("outboxSent", () => got.push("client event"));
  t.client.on("outboxFailed", () => got.push("client event"));
  t.client.on("*", (data, event) => got.push(event.type));
  t.client._deliver({ type: "outboxSent", data: {} });
  t.client._deliver({ type: "outboxFailed", data: {} });
  assert.deepEqual(got, ["outboxSent", "outboxFailed"]);
});
