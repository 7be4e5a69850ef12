// The cursor and delivery: stored events once and in order across reconnects, live events
// through, a reset moving the cursor and refetching the chat list before anything after it.
import assert from "node:assert/strict";

import { Chinwag, Cursor } from "../../web/chinwag.js";
import { FakeClock, FakeStorage, fakeFetch, frame, json, settle, sseStream, test, tokenFor } from "./fakes.mjs";

test("Cursor accepts only newer ids, keeps itself in storage, and moves anywhere on reset", () => {
  const storage = new FakeStorage();
  const c = new Cursor(storage, "k");
  assert.equal(c.value, null);
  assert.equal(c.accept(5), true);
  assert.equal(c.accept(5), false);
  assert.equal(c.accept(3), false);
  assert.equal(c.accept(6), true);
  assert.equal(new Cursor(storage, "k").value, 6, "read back from storage");
  c.advance(4);
  assert.equal(c.value, 6, "advance never goes back");
  c.advance(9);
  assert.equal(c.value, 9);
  c.moveTo(2);
  assert.equal(c.value, 2, "a reset may move the cursor back");
  assert.equal(c.accept(3), true);
  // Garbage in storage is no cursor.
  storage.setItem("bad", '"x"');
  assert.equal(new Cursor(storage, "bad").value, null);
});

/** A client on SSE against a fake server whose streams the test writes to. */
function sseClient({ storage = new FakeStorage(), chats = { chats: [{ id: 1 }], users: [] } } = {}) {
  const clock = new FakeClock();
  const streams = [];
  const { fetch, calls } = fakeFetch(({ path, signal }) => {
    if (path === "/v1/poll") return json(200, { events: [], next: 0 });
    if (path === "/v1/events") {
      const s = sseStream(signal);
      streams.push(s);
      return s.response;
    }
    if (path === "/v1/chats") return json(200, { type: "chats", data: chats });
    throw new Error(`unexpected ${path}`);
  });
  const client = new Chinwag({ baseUrl: "http://chat.test", token: tokenFor("alice"), fetch, clock, storage, transport: "sse", random: () => 0 });
  const seen = [];
  client.on("*", (data, event) => seen.push(event));
  return { client, clock, streams, calls, seen, storage };
}

test("stored events are delivered once and in order across a reconnect; live ones pass through", async () => {
  const { client, clock, streams, calls, seen } = sseClient();
  client.start();
  await settle();
  assert.equal(streams.length, 1);
  const s1 = streams[0];
  s1.write("retry: 3000\n\n");
  s1.write(frame("message", { id: 1 }, 1) + frame("typing", { chatId: 1 }) + frame("message", { id: 2 }, 2));
  s1.write(frame("message", { id: 2 }, 2)); // a repeat on the same stream
  s1.write(frame("typing", { chatId: 1 })); // live events are not deduplicated
  await settle();
  s1.fail(); // the connection drops
  await settle();
  assert.equal(client.transport, "offline");
  await clock.advance(4500); // the stream's retry: 3000, with at most half of it as jitter
  assert.equal(streams.length, 2);
  assert.equal(calls.filter((c) => c.path === "/v1/events")[1].headers["last-event-id"], "2");
  // The server replays after the cursor; one it already sent may come again on a race.
  streams[1].write("retry: 3000\n\n" + frame("message", { id: 2 }, 2) + frame("message", { id: 3 }, 3));
  await settle();
  assert.deepEqual(
    seen.map((e) => [e.type, e.id ?? null]),
    [["message", 1], ["typing", null], ["message", 2], ["typing", null], ["message", 3]],
  );
  assert.equal(client.cursor, 3);
  client.stop();
});

test("the cursor survives the client: a new client on the same storage resumes after it", async () => {
  const first = sseClient();
  first.client.start();
  await settle();
  first.streams[0].write("retry: 3000\n\n" + frame("message", { id: 1 }, 7));
  await settle();
  first.client.stop();
  const second = sseClient({ storage: first.storage });
  assert.equal(second.client.cursor, 7);
  second.client.start();
  await settle();
  const opened = second.calls.filter((c) => c.path === "/v1/events");
  assert.equal(opened.length, 1, "straight to the stream: the cursor is known");
  assert.equal(opened[0].headers["last-event-id"], "7");
  second.streams[0].write(frame("message", { id: 1 }, 7) + frame("message", { id: 2 }, 8));
  await settle();
  assert.deepEqual(second.seen.map((e) => e.id), [8]);
  second.client.stop();
});

test("without a cursor, an unheld poll learns the present before the stream opens", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(({ path, signal }) => {
    if (path === "/v1/poll") return json(200, { events: [], next: 41 });
    return sseStream(signal).response;
  });
  const client = new Chinwag({ baseUrl: "http://chat.test", token: tokenFor("alice"), fetch, clock });
  client.start();
  await settle();
  assert.deepEqual(calls.map((c) => c.path), ["/v1/poll", "/v1/events"]);
  assert.equal(calls[0].query.timeout, "0");
  assert.equal(calls[0].query.since, undefined);
  assert.equal(calls[1].headers["last-event-id"], "41");
  assert.equal(client.cursor, 41);
  client.stop();
});

test("a reset moves the cursor to its id, refetches chats, and holds later events until then", async () => {
  const storage = new FakeStorage();
  new Cursor(storage, "chinwag:http://chat.test:alice:cursor").moveTo(500);
  const { client, streams, calls, seen } = sseClient({ storage, chats: { chats: [{ id: 9 }], users: [{ id: "bob" }] } });
  assert.equal(client.cursor, 500);
  const resets = [];
  client.on("reset", (data, event) => resets.push({ data, event, seenBefore: seen.length }));
  client.start();
  await settle();
  // The server lost its data (or the cursor is past retention): reset to its present, 12.
  streams[0].write(
    "retry: 3000\n\n" +
      frame("reset", { reason: "the cursor is older than the retention window or unknown; refetch chats" }, 12) +
      frame("chats", { chats: [], users: [] }) +
      frame("message", { id: 1 }, 13),
  );
  await settle();
  assert.equal(calls.filter((c) => c.path === "/v1/chats").length, 1, "the chat list is refetched");
  assert.equal(resets.length, 1);
  assert.deepEqual(resets[0].data.chats, [{ id: 9 }]);
  assert.deepEqual(resets[0].data.users, [{ id: "bob" }]);
  assert.equal(resets[0].event.id, 12);
  assert.equal(resets[0].seenBefore, 0, "nothing after the reset was delivered before it");
  assert.deepEqual(seen.map((e) => [e.type, e.id ?? null]), [["reset", 12], ["chats", null], ["message", 13]]);
  assert.equal(client.cursor, 13, "ids below the old cursor are new after a reset");
  client.stop();
});

test("poll answers advance the cursor to next, and a poll reset works like the stream's", async () => {
  const clock = new FakeClock();
  const answers = [
    { events: [{ id: 3, type: "message", data: { id: 1 } }, { type: "typing", data: {} }], next: 5 },
    { events: [{ id: 2, type: "reset", data: { reason: "r" } }], next: 2 },
    { events: [{ id: 3, type: "message", data: { id: 2 } }], next: 3 },
  ];
  const { fetch, calls } = fakeFetch(({ path, signal }) => {
    if (path === "/v1/chats") return json(200, { type: "chats", data: { chats: [], users: [] } });
    const next = answers.shift();
    return next ? json(200, next) : new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted"))));
  });
  const client = new Chinwag({ baseUrl: "http://chat.test", token: tokenFor("alice"), fetch, clock, transport: "poll" });
  const seen = [];
  client.on("*", (d, e) => seen.push([e.type, e.id ?? null]));
  client.start();
  await settle();
  const polls = calls.filter((c) => c.path === "/v1/poll");
  assert.deepEqual(polls.map((c) => c.query.since), [undefined, "5", "2", "3"]);
  assert.deepEqual(polls.map((c) => c.query.timeout), ["0", "25", "25", "25"]);
  assert.deepEqual(seen, [["message", 3], ["typing", null], ["reset", 2], ["message", 3]]);
  assert.equal(client.transport, "poll");
  client.stop();
});

test("a listener that throws is reported as an error and does not stop delivery", async () => {
  const { client, streams, seen } = sseClient();
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.on("message", () => {
    throw new Error("app bug");
  });
  client.start();
  await settle();
  streams[0].write(frame("message", { id: 1 }, 1) + frame("message", { id: 2 }, 2));
  await settle();
  assert.deepEqual(seen.map((e) => e.id), [1, 2]);
  assert.equal(errors.length, 2);
  assert.equal(errors[0].message, "app bug");
  client.stop();
});

test("a host event named like a client event reaches only the * listeners", async () => {
  const { client, streams, seen } = sseClient();
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.start();
  await settle();
  streams[0].write(frame("error", { custom: true }, 1));
  await settle();
  assert.equal(errors.length, 0);
  assert.deepEqual(seen.map((e) => e.type), ["error"]);
  client.stop();
});
