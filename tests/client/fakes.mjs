// Test doubles for the client's unit tests: a clock whose time moves only when a test says so,
// and a fetch that answers from a test's handler (with real Response objects and SSE bodies the
// test feeds chunk by chunk). Nothing here waits for real time.
import { test as nodeTest } from "node:test";

/** node:test's `test`, bounded: a unit test that hangs fails after 10 s. */
export function test(name, fn) {
  return nodeTest(name, { timeout: 10000 }, fn);
}

/** Lets pending promise chains and stream reads run to their next wait. */
export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** A manual clock with the {now, setTimeout, clearTimeout} the client takes as `clock`. */
export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.t = start;
    this.timers = new Map();
    this.seq = 0;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in time order. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** A storage that counts its writes, with the getItem/setItem/removeItem of localStorage. */
export class FakeStorage {
  constructor() {
    this.map = new Map();
    this.writes = 0;
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.writes += 1;
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.writes += 1;
    this.map.delete(k);
  }
  /** The parsed value of the first key ending in `suffix`. */
  find(suffix) {
    for (const [k, v] of this.map) if (k.endsWith(suffix)) return JSON.parse(v);
    return undefined;
  }
}

/** A JSON answer. */
export function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** The error envelope of the protocol. */
export function failure(status, reason, headers = {}) {
  return json(status, { error: { code: status, reason, message: `${reason} (test)` } }, headers);
}

function abortError() {
  const e = new Error("This operation was aborted");
  e.name = "AbortError";
  return e;
}

/** An SSE answer the test writes to: `write(text)`, `end()`, `fail()`. Aborting errors it. */
export function sseStream(signal) {
  let controller;
  const body = new ReadableStream({
    start(c) {
      controller = c;
    },
  });
  const enc = new TextEncoder();
  let open = true;
  const stream = {
    response: new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } }),
    write(text) {
      if (open) controller.enqueue(typeof text === "string" ? enc.encode(text) : text);
    },
    end() {
      if (open) controller.close();
      open = false;
    },
    fail() {
      if (open) controller.error(new TypeError("terminated"));
      open = false;
    },
    get open() {
      return open;
    },
  };
  signal?.addEventListener("abort", () => {
    if (open) controller.error(abortError());
    open = false;
  });
  return stream;
}

/** A promise that never settles unless `signal` aborts it (a proxy holding the answer). */
export function hang(signal) {
  return new Promise((_, reject) => {
    signal?.addEventListener("abort", () => reject(abortError()));
  });
}

/**
 * A fetch answering from `handler({url, path, query, method, headers, body, signal})`, which
 * returns a Response (or a promise of one) or throws. Every call is kept in `calls`.
 */
export function fakeFetch(handler) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const u = new URL(url);
    const call = {
      url,
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      method: init.method || "GET",
      headers: Object.fromEntries(Object.entries(init.headers || {}).map(([k, v]) => [k.toLowerCase(), v])),
      body: typeof init.body === "string" ? JSON.parse(init.body) : init.body,
      signal: init.signal,
    };
    calls.push(call);
    if (init.signal?.aborted) throw abortError();
    return handler(call);
  };
  return { fetch, calls };
}

/** A JWT-shaped token for `user` (unsigned: the fake server does not check it). */
export function tokenFor(user, tag = "") {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp: 4102444800 })}.sig${tag}`;
}

/** An SSE frame as the server writes it. */
export function frame(type, data, id) {
  const head = id === undefined ? "" : `id: ${id}\n`;
  return `${head}event: ${type}\ndata: ${JSON.stringify({ type, data })}\n\n`;
}
