// SseParser: the event-stream format as the server writes it, fed in chunks split anywhere.
import assert from "node:assert/strict";

import { SseParser } from "../../web/chinwag.js";
import { test } from "./fakes.mjs";

const enc = new TextEncoder();

/** Everything the parser yields for `chunks`, pushed in order. */
function parse(chunks) {
  const p = new SseParser();
  const out = [];
  for (const c of chunks) out.push(...p.push(c));
  return { out, parser: p };
}

const events = (items) => items.filter((i) => i.type === "event");

const STREAM =
  "retry: 3000\n\n" +
  'event: chats\ndata: {"type":"chats","data":{"chats":[],"users":[]}}\n\n' +
  ": ping\n\n" +
  'id: 42\nevent: message\ndata: {"type":"message","data":{"text":"héllo 👋"}}\n\n' +
  'event: typing\ndata: {"type":"typing","data":{"chatId":1}}\n\n';

const WANT = [
  { type: "retry", ms: 3000 },
  { type: "event", event: "chats", data: '{"type":"chats","data":{"chats":[],"users":[]}}' },
  { type: "comment", text: "ping" },
  { type: "event", event: "message", data: '{"type":"message","data":{"text":"héllo 👋"}}', id: "42" },
  { type: "event", event: "typing", data: '{"type":"typing","data":{"chatId":1}}' },
];

test("a whole stream in one chunk: retry, events with and without id, a comment", () => {
  assert.deepEqual(parse([STREAM]).out, WANT);
});

test("the same stream split at every byte offset, in bytes (UTF-8 split inside characters)", () => {
  const bytes = enc.encode(STREAM);
  for (let at = 1; at < bytes.length; at++) {
    const { out } = parse([bytes.slice(0, at), bytes.slice(at)]);
    assert.deepEqual(out, WANT, `split at byte ${at}`);
  }
});

test("the stream fed one byte at a time", () => {
  const bytes = enc.encode(STREAM);
  const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
  assert.deepEqual(parse(chunks).out, WANT);
});

test("CRLF and lone CR end lines like LF, a CRLF split between chunks counts once", () => {
  const crlf = STREAM.replace(/\n/g, "\r\n");
  const cr = STREAM.replace(/\n/g, "\r");
  assert.deepEqual(parse([crlf]).out, WANT);
  assert.deepEqual(parse([cr]).out, WANT);
  const bytes = enc.encode(crlf);
  for (let at = 1; at < bytes.length; at++) {
    assert.deepEqual(parse([bytes.slice(0, at), bytes.slice(at)]).out, WANT, `CRLF stream split at ${at}`);
  }
  // A CR ending a chunk, then an empty chunk, then the LF: still one line break.
  const { out } = parse(["data: a\r", "", "\n\r\n"]);
  assert.deepEqual(events(out), [{ type: "event", event: "message", data: "a" }]);
});

test("multi-line data joins with LF; no space after the colon is fine; one leading space is dropped", () => {
  const { out } = parse(["data: one\ndata:two\ndata:  three\ndata\n\n"]);
  assert.deepEqual(events(out), [{ type: "event", event: "message", data: "one\ntwo\n three\n" }]);
});

test("an event is dispatched only at its empty line, and not at all without data", () => {
  const p = new SseParser();
  assert.deepEqual(p.push("id: 7\nevent: message\ndata: x\n"), []);
  assert.deepEqual(p.push("\n"), [{ type: "event", event: "message", data: "x", id: "7" }]);
  // Only an id and an event name: no event, but the stream's last event id moves.
  assert.deepEqual(p.push("id: 8\nevent: nothing\n\n"), []);
  assert.equal(p.lastEventId, "8");
  // The next event has no id line of its own: it is a live event, though lastEventId persists.
  assert.deepEqual(p.push("data: y\n\n"), [{ type: "event", event: "message", data: "y" }]);
  assert.equal(p.lastEventId, "8");
  // An unterminated event at the end of the stream is discarded.
  p.push("data: half");
  assert.deepEqual(p.end(), []);
});

test("comments are reported (with or without a space) and otherwise ignored", () => {
  const { out } = parse([": ping\n:closed: this user opened more streams\n\ndata: z\n\n"]);
  assert.deepEqual(out, [
    { type: "comment", text: "ping" },
    { type: "comment", text: "closed: this user opened more streams" },
    { type: "event", event: "message", data: "z" },
  ]);
});

test("retry takes digits only; an invalid retry is ignored", () => {
  const p = new SseParser();
  assert.deepEqual(p.push("retry: 5000\n\n"), [{ type: "retry", ms: 5000 }]);
  assert.equal(p.retry, 5000);
  assert.deepEqual(p.push("retry: 5s\nretry: -1\nretry:\n\n"), []);
  assert.equal(p.retry, 5000);
});

test("an id with a NUL is ignored; unknown fields are ignored; a leading BOM is dropped", () => {
  const { out, parser } = parse(["\uFEFFid: 1\0\nfoo: bar\ndata: d\n\n"]);
  assert.deepEqual(out, [{ type: "event", event: "message", data: "d" }]);
  assert.equal(parser.lastEventId, "");
  // A BOM split across chunks as bytes is dropped too.
  const bom = enc.encode("\uFEFFdata: e\n\n");
  assert.deepEqual(events(parse([bom.slice(0, 1), bom.slice(1, 2), bom.slice(2)]).out), [
    { type: "event", event: "message", data: "e" },
  ]);
});

test("a large data line arriving in many chunks is one event", () => {
  const text = "x".repeat(70000);
  const body = enc.encode(`id: 9\nevent: message\ndata: ${text}\n\n`);
  const chunks = [];
  for (let i = 0; i < body.length; i += 1000) chunks.push(body.slice(i, i + 1000));
  const got = events(parse(chunks).out);
  assert.equal(got.length, 1);
  assert.equal(got[0].data.length, 70000);
  assert.equal(got[0].id, "9");
});
