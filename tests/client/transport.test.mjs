// Transport decisions: a muted stream (no first byte, or silence) falls back to long-poll on the
// same cursor, the choice is remembered for the origin, SSE is tried again later; reconnects
// honour the stream's retry:; a 401 asks getToken again, and ends a fixed token.
import assert from "node:assert/strict";

import { Chinwag, StreamWatch, TransportPolicy } from "../../web/chinwag.js";
import { FakeClock, FakeStorage, failure, fakeFetch, frame, hang, json, settle, sseStream, test, tokenFor } from "./fakes.mjs";

test("StreamWatch: muted without a first byte in time, or after a silence", () => {
  const w = new StreamWatch({ firstByteTimeout: 5000, silenceTimeout: 35000 });
  w.open(1000);
  assert.equal(w.deadline(), 6000);
  assert.equal(w.check(5999), null);
  assert.equal(w.check(6000), "first-byte");
  w.open(10000);
  assert.equal(w.bytes(14000), true, "the first bytes");
  assert.equal(w.bytes(20000), false);
  assert.equal(w.check(54999), null);
  assert.equal(w.check(55000), "silence");
});

test("TransportPolicy: auto falls back, remembers per storage key, retries SSE later, forgets once SSE works", () => {
  const storage = new FakeStorage();
  const p = new TransportPolicy({ mode: "auto", sseRetryAfter: 60000, storage, key: "t" });
  assert.equal(p.initial(0), "sse");
  assert.equal(p.sseRetryAt(), null);
  assert.equal(p.muted(1000), "poll");
  assert.deepEqual(JSON.parse(storage.getItem("t")), { transport: "poll", at: 1000 });
  // Another client on the same storage starts on poll until the retry time.
  const again = new TransportPolicy({ mode: "auto", sseRetryAfter: 60000, storage, key: "t" });
  assert.equal(again.initial(2000), "poll");
  assert.equal(again.shouldRetrySse(60999), false);
  assert.equal(again.shouldRetrySse(61000), true);
  assert.equal(again.initial(61000), "sse");
  // Another origin's key is not affected.
  assert.equal(new TransportPolicy({ storage, key: "other" }).initial(2000), "sse");
  again.sseWorks();
  assert.equal(storage.getItem("t"), null);
  assert.equal(again.initial(2000), "sse");
  // Fixed modes never switch and never remember.
  const sse = new TransportPolicy({ mode: "sse", storage, key: "s" });
  assert.equal(sse.muted(0), "sse");
  assert.equal(storage.getItem("s"), null);
  assert.equal(new TransportPolicy({ mode: "poll", storage, key: "p" }).initial(0), "poll");
});

/**
 * A client against a fake server. `sse(call)` answers /v1/events (default: a stream the test
 * writes to); polls answer `{events: [], next}` at once when unheld, and hold until aborted.
 */
function setup({ transport = "auto", storage = new FakeStorage(), sse, next = 10, options = {} } = {}) {
  const clock = new FakeClock();
  const streams = [];
  const pollEvents = [];
  const held = [];
  /** Answers the held poll (or the next one) with `events`. */
  const answerPoll = (...events) => {
    pollEvents.push(...events);
    const h = held.shift();
    if (h) {
      clock.clearTimeout(h.timer);
      h.resolve(h.answer());
    }
  };
  const { fetch, calls } = fakeFetch((call) => {
    if (call.path === "/v1/events") {
      if (sse) return sse(call);
      const s = sseStream(call.signal);
      streams.push(s);
      return s.response;
    }
    if (call.path === "/v1/poll") {
      const answer = () => {
        const events = pollEvents.splice(0);
        const last = events.length ? events[events.length - 1].id : Number(call.query.since ?? next);
        return json(200, { events, next: last });
      };
      if (call.query.timeout === "0" || pollEvents.length) return answer();
      // Held like the server holds it: answered by an event, or empty when its timeout ends.
      return new Promise((resolve, reject) => {
        const h = { resolve, answer };
        held.push(h);
        h.timer = clock.setTimeout(() => {
          held.splice(held.indexOf(h), 1);
          resolve(answer());
        }, Number(call.query.timeout) * 1000);
        call.signal.addEventListener("abort", () => {
          clock.clearTimeout(h.timer);
          reject(new DOMException("aborted", "AbortError"));
        });
      });
    }
    throw new Error(`unexpected ${call.path}`);
  });
  const client = new Chinwag({
    baseUrl: "http://chat.test",
    token: tokenFor("alice"),
    fetch,
    clock,
    storage,
    transport,
    random: () => 0,
    firstByteTimeout: 5000,
    silenceTimeout: 35000,
    sseRetryAfter: 60000,
    ...options,
  });
  const transports = [];
  client.on("transport", (t) => transports.push(t));
  const seen = [];
  client.on("*", (d, e) => seen.push(e.id ?? e.type));
  return { client, clock, calls, streams, transports, seen, storage, answerPoll };
}

const paths = (calls) => calls.map((c) => c.path + (c.path === "/v1/poll" ? `?since=${c.query.since}&timeout=${c.query.timeout}` : ""));

test("no first byte within firstByteTimeout: poll on the same cursor, remembered for the origin", async () => {
  const t = setup({ sse: (call) => hang(call.signal) });
  t.client.start();
  await settle();
  assert.deepEqual(paths(t.calls), ["/v1/poll?since=undefined&timeout=0", "/v1/events"]);
  await t.clock.advance(4999);
  assert.equal(t.calls.length, 2, "not muted before the timeout");
  await t.clock.advance(1);
  assert.deepEqual(paths(t.calls).slice(2), ["/v1/poll?since=10&timeout=0", "/v1/poll?since=10&timeout=25"]);
  assert.deepEqual(t.transports, ["poll"]);
  assert.deepEqual(t.storage.find(":transport"), { transport: "poll", at: t.clock.now() });
  t.client.stop();
});

test("a stream gone silent past silenceTimeout falls back too, from the last event it delivered", async () => {
  const t = setup();
  t.client.start();
  await settle();
  t.streams[0].write("retry: 3000\n\n" + frame("message", { id: 1 }, 11));
  await settle();
  assert.deepEqual(t.transports, ["sse"]);
  await t.clock.advance(30000);
  t.streams[0].write(": ping\n\n"); // a ping keeps it alive
  await t.clock.advance(34999);
  assert.equal(t.client.transport, "sse");
  await t.clock.advance(1);
  assert.equal(t.streams[0].open, false, "the muted stream is closed");
  assert.deepEqual(t.transports, ["sse", "poll"]);
  const polls = t.calls.filter((c) => c.path === "/v1/poll").slice(1);
  assert.equal(polls[0].query.since, "11", "the poll resumes where the stream was");
  t.client.stop();
});

test("a remembered fallback starts on poll; SSE is tried again after sseRetryAfter and kept when it works", async () => {
  const storage = new FakeStorage();
  const first = setup({ storage, sse: (call) => hang(call.signal) });
  first.client.start();
  await first.clock.advance(5000);
  assert.equal(first.client.transport, "poll");
  first.client.stop();

  const t = setup({ storage });
  t.clock.t = first.clock.t + 1000;
  t.client.start();
  await settle();
  // Straight to poll, from the cursor the first client kept in the same storage.
  assert.deepEqual(paths(t.calls), ["/v1/poll?since=10&timeout=0", "/v1/poll?since=10&timeout=25"]);
  assert.deepEqual(t.transports, ["poll"]);
  // The held poll is given up for SSE when the retry time comes, 60 s after the switch.
  await t.clock.advance(58999);
  assert.equal(t.streams.length, 0);
  await t.clock.advance(1);
  assert.equal(t.streams.length, 1);
  assert.equal(t.calls.at(-1).headers["last-event-id"], "10");
  t.streams[0].write("retry: 3000\n\n");
  await settle();
  assert.deepEqual(t.transports, ["poll", "sse"]);
  assert.equal(t.storage.find(":transport"), undefined, "SSE works: the fallback is forgotten");
  t.client.stop();
});

test("SSE tried again and muted again goes back to poll, and waits another sseRetryAfter", async () => {
  const t = setup({ sse: (call) => hang(call.signal) });
  t.client.start();
  await t.clock.advance(5000);
  const switched = t.clock.now();
  await t.clock.advance(60000);
  assert.equal(t.calls.filter((c) => c.path === "/v1/events").length, 2, "SSE tried again");
  await t.clock.advance(5000);
  assert.equal(t.client.transport, "poll");
  assert.deepEqual(t.storage.find(":transport"), { transport: "poll", at: switched + 65000 });
  await t.clock.advance(59000);
  assert.equal(t.calls.filter((c) => c.path === "/v1/events").length, 2);
  t.client.stop();
});

test("events arriving while switching are delivered once: poll picks up after the stream's last", async () => {
  const t = setup();
  t.client.start();
  await settle();
  t.streams[0].write("retry: 3000\n\n" + frame("message", {}, 11) + frame("message", {}, 12));
  await settle();
  await t.clock.advance(35000);
  // The poll replays from 12; the server may repeat 12 in a race, and has 13 and 14 new.
  t.answerPoll({ id: 12, type: "message", data: {} }, { id: 13, type: "message", data: {} }, { id: 14, type: "message", data: {} });
  await settle();
  assert.deepEqual(t.seen.filter((x) => typeof x === "number"), [11, 12, 13, 14]);
  t.client.stop();
});

test("transport 'sse' never falls back: a muted stream is reopened", async () => {
  const t = setup({ transport: "sse", sse: (call) => hang(call.signal) });
  t.client.start();
  await t.clock.advance(5000);
  await t.clock.advance(2000);
  const streams = t.calls.filter((c) => c.path === "/v1/events").length;
  assert.equal(streams, 2, "the stream was reopened after a backoff");
  assert.equal(t.calls.filter((c) => c.path === "/v1/poll").length, 1, "only the first, unheld poll");
  assert.equal(t.storage.find(":transport"), undefined);
  t.client.stop();
});

test("an answer that is not an event stream (a proxy's page) counts as muted", async () => {
  const t = setup({ sse: () => new Response("<html>blocked</html>", { headers: { "content-type": "text/html" } }) });
  t.client.start();
  await settle();
  assert.equal(t.client.transport, "poll");
  t.client.stop();
});

test("reconnects honour the stream's retry:, back off on failures, and start over once connected", async () => {
  let fail = 0;
  const t = setup({
    next: 1,
    sse: (call) => {
      if (fail > 0) {
        fail -= 1;
        throw new TypeError("fetch failed");
      }
      const s = sseStream(call.signal);
      t.streams.push(s);
      s.write("retry: 7000\n\n");
      return s.response;
    },
  });
  t.client.start();
  await settle();
  assert.equal(t.client.transport, "sse");
  fail = 4;
  t.streams[0].end(); // the server ended the stream; the next four opens fail
  await settle();
  const times = [];
  const base = t.clock.now();
  for (let i = 0; i < 100; i++) {
    const before = t.calls.length;
    await t.clock.advance(500);
    if (t.calls.length > before) times.push(t.clock.now() - base);
  }
  // Never sooner than the retry: 7 s; the backoff (1, 2, 4, 8, 16 s) takes over once above it.
  assert.deepEqual(times, [7000, 14000, 21000, 29000, 45000]);
  assert.equal(t.client.transport, "sse");
  t.streams.at(-1).end();
  await t.clock.advance(6999);
  assert.equal(t.calls.length, 7, "the first poll, the first stream, four failures, the good one");
  await t.clock.advance(1);
  assert.equal(t.calls.length, 8, "connected: back to the retry: delay");
  t.client.stop();
});

test("a 401 on the stream asks getToken again and reconnects with the new token", async () => {
  const clock = new FakeClock();
  const tokens = [tokenFor("alice", "1"), tokenFor("alice", "2")];
  let asked = 0;
  const { fetch, calls } = fakeFetch(({ path, headers, signal }) => {
    if (headers.authorization !== `Bearer ${tokens[1]}`) return failure(401, "token_invalid");
    if (path === "/v1/poll") return json(200, { events: [], next: 3 });
    return sseStream(signal).response;
  });
  const client = new Chinwag({ baseUrl: "http://chat.test", getToken: async () => tokens[asked++], fetch, clock, random: () => 0 });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.start();
  await clock.advance(1000);
  assert.equal(asked, 2);
  assert.equal(client.userId, "alice");
  assert.deepEqual(calls.map((c) => [c.path, c.headers.authorization.slice(-1)]), [
    ["/v1/poll", "1"],
    ["/v1/poll", "2"],
    ["/v1/events", "2"],
  ]);
  assert.deepEqual(errors, [], "a refreshed token is routine");
  client.stop();
});

test("a 401 with a fixed token: error, offline, and no more requests", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(() => failure(401, "token_invalid"));
  const client = new Chinwag({ baseUrl: "http://chat.test", token: tokenFor("alice"), fetch, clock });
  const errors = [];
  const transports = [];
  client.on("error", (e) => errors.push(e));
  client.on("transport", (t) => transports.push(t));
  client.start();
  await clock.advance(60000);
  assert.equal(calls.length, 1);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].status, 401);
  assert.equal(errors[0].code, "token_invalid");
  assert.equal(client.transport, "offline");
  await assert.rejects(client.chats(), (e) => e.status === 401);
  assert.equal(calls.length, 1, "the refused token is not sent again");
  client.stop();
});

test("stop() ends every loop and timer: nothing more is fetched", async () => {
  const t = setup({ sse: (call) => hang(call.signal) });
  t.client.start();
  await settle();
  t.client.stop();
  const n = t.calls.length;
  await t.clock.advance(600000);
  assert.equal(t.calls.length, n);
  assert.equal(t.clock.timers.size, 0, "no timer left behind");
  assert.equal(t.client.transport, "offline");
});
