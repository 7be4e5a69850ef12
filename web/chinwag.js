/**
 * The Chinwag client: one dependency-free ES module for browsers (served as /v1/client.js) and
 * Node 20+. It owns everything between an app and a Chinwag server (protocol: docs/api.md;
 * reference for app developers: docs/client.md):
 *
 * - receiving: one Server-Sent Events stream read with fetch (SseParser), or long-poll where a
 *   proxy mutes the stream (StreamWatch decides, TransportPolicy chooses and remembers per
 *   origin), both resuming from one cursor (Cursor), so every stored event reaches the app
 *   exactly once and in order across reconnects, transport switches and server restarts;
 * - reconnecting with backoff and jitter (Backoff), never sooner than the stream's `retry:`;
 * - sending through an outbox kept in storage (Outbox), whose retries reuse the message's
 *   clientMessageId so that they can never store a message twice (isRetryable says when);
 * - tokens (a fixed one, or getToken asked again after a 401), uploads, and the request API.
 *
 * The pure pieces (parser, cursor, watch, policy, backoff, outbox) take their time and storage
 * from the caller and are exported for tests; apps use Chinwag and ChinwagError.
 */

const DEFAULTS = {
  baseUrl: "",
  token: null,
  getToken: null,
  userId: null,
  storage: null,
  storagePrefix: "chinwag",
  transport: "auto",
  firstByteTimeout: 5000,
  silenceTimeout: 35000,
  sseRetryAfter: 300000,
  pollTimeout: 25,
  requestTimeout: 30000,
  fetch: null,
  clock: null,
  random: Math.random,
};

/** The client's own events; a server event of one of these names reaches only "*" listeners. */
const CLIENT_EVENTS = new Set(["transport", "outbox", "outboxSent", "outboxFailed", "error"]);

/** How much longer than its hold a poll may take before the client gives up on it. */
const POLL_GRACE_MS = 15000;

/** How often a reset's refetch of the chat list is tried before the reset is delivered without it. */
const RESET_TRIES = 3;

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * A failed call. `status` is the HTTP status (0 when no answer came: a network error or a
 * timeout), `code` the server's stable `reason` (`chat_not_found`, `rate_limited`, …) or one of
 * the client's own (`network_error`, `timeout`, `bad_response`, `http_error`), `retryAfter` the
 * seconds of a `Retry-After` header, or null.
 */
export class ChinwagError extends Error {
  /** @param {{status?: number, code?: string, message?: string, retryAfter?: number|null, cause?: unknown}} init */
  constructor({ status = 0, code = "network_error", message = code, retryAfter = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ChinwagError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Whether a failed send may be tried again with the same clientMessageId: no answer at all, a
 * 5xx (503 included) or a 429. Any other 4xx would fail the same way again.
 * @param {unknown} err
 */
export function isRetryable(err) {
  if (!(err instanceof ChinwagError)) return false;
  // 408: the body took too long on the way (a slow link); the same send again is safe.
  return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
}

/** The ChinwagError of an HTTP answer that is not a success. */
function errorOfAnswer(status, json, headers) {
  const seconds = Number.parseInt(headers?.get?.("retry-after") ?? "", 10);
  const retryAfter = Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
  const e = json && typeof json === "object" ? json.error : null;
  if (e && typeof e.reason === "string") {
    return new ChinwagError({ status, code: e.reason, message: String(e.message ?? e.reason), retryAfter });
  }
  return new ChinwagError({ status, code: "http_error", message: `HTTP ${status}`, retryAfter });
}

/** Any thrown value as a ChinwagError (a fetch that failed is a network error). */
function asChinwagError(err) {
  if (err instanceof ChinwagError) return err;
  const message = err && err.message ? String(err.message) : String(err);
  return new ChinwagError({ status: 0, code: "network_error", message, cause: err });
}

// ---------------------------------------------------------------------------------------------
// Storage

/** A storage in memory, with the {getItem, setItem, removeItem} of localStorage. */
export class MemoryStorage {
  constructor() {
    this._map = new Map();
  }
  getItem(key) {
    return this._map.has(key) ? this._map.get(key) : null;
  }
  setItem(key, value) {
    this._map.set(key, String(value));
  }
  removeItem(key) {
    this._map.delete(key);
  }
}

/** The JSON value under `key`, or `fallback` when absent, unreadable or refused. */
function load(storage, key, fallback) {
  try {
    const raw = storage.getItem(key);
    return raw == null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

/** Stores `value` as JSON (null removes it). A full or refused storage leaves memory the truth. */
function save(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, JSON.stringify(value));
  } catch {
    // Private browsing or a full quota: the client goes on with what it holds in memory.
  }
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/**
 * An incremental parser of an event stream, as the HTML standard defines it: lines end in CRLF,
 * LF or CR (a CRLF may be split between two chunks), a leading BOM is dropped, `:` starts a
 * comment, `data:` lines join with LF, `id:` (without NUL) and `retry:` (digits only) are
 * fields, an empty line dispatches. Chunks may split anywhere, inside a UTF-8 character too.
 *
 * `push` returns what the chunk completed, in order:
 * `{type: "event", event, data, id}` (`id` is this event's own `id:` field, or undefined),
 * `{type: "comment", text}` and `{type: "retry", ms}`.
 */
export class SseParser {
  constructor() {
    this._decoder = new TextDecoder("utf-8");
    this._line = "";
    this._afterCR = false;
    this._started = false;
    this._data = [];
    this._event = "";
    this._id = undefined;
    /** The stream's last event id as the standard keeps it (persists across events). */
    this.lastEventId = "";
    /** The reconnection time the stream asked for, in ms, or null. */
    this.retry = null;
  }

  /**
   * Parses the next chunk of the stream.
   * @param {Uint8Array|string} chunk
   * @returns {Array<{type: "event", event: string, data: string, id?: string} | {type: "comment", text: string} | {type: "retry", ms: number}>}
   */
  push(chunk) {
    const text = typeof chunk === "string" ? chunk : this._decoder.decode(chunk, { stream: true });
    return this._text(text);
  }

  /** The stream ended: an event that was not terminated by an empty line is discarded. */
  end() {
    const out = this._text(this._decoder.decode());
    this._line = "";
    this._data = [];
    this._event = "";
    this._id = undefined;
    return out;
  }

  _text(text) {
    const out = [];
    let i = 0;
    if (!this._started && text.length > 0) {
      this._started = true;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this._afterCR && i < text.length) {
      if (text.charCodeAt(i) === 10) i += 1;
      this._afterCR = false;
    }
    let start = i;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this._field(this._line + text.slice(start, i), out);
      this._line = "";
      if (c === 13) {
        if (i + 1 === text.length) this._afterCR = true;
        else if (text.charCodeAt(i + 1) === 10) i += 1;
      }
      start = i + 1;
    }
    this._line += text.slice(start);
    return out;
  }

  _field(line, out) {
    if (line === "") return this._dispatch(out);
    if (line.charCodeAt(0) === 58 /* : */) {
      const text = line.slice(1);
      out.push({ type: "comment", text: text.startsWith(" ") ? text.slice(1) : text });
      return;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (name) {
      case "event":
        this._event = value;
        break;
      case "data":
        this._data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) {
          this._id = value;
          this.lastEventId = value;
        }
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) {
          this.retry = Number(value);
          out.push({ type: "retry", ms: this.retry });
        }
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  _dispatch(out) {
    if (this._data.length > 0) {
      const event = { type: "event", event: this._event || "message", data: this._data.join("\n") };
      if (this._id !== undefined) event.id = this._id;
      out.push(event);
    }
    this._data = [];
    this._event = "";
    this._id = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Cursor, outbox

/**
 * The id of the last stored event delivered, kept in storage: events at or below it are repeats.
 */
export class Cursor {
  /**
   * @param {{getItem, setItem, removeItem}} [storage]
   * @param {string} [key]
   */
  constructor(storage = new MemoryStorage(), key = "cursor") {
    this._storage = storage;
    this._key = key;
    const stored = load(storage, key, null);
    /** @type {number|null} */
    this.value = Number.isSafeInteger(stored) && stored >= 0 ? stored : null;
  }

  /** True (and the cursor moves to `id`) when `id` is newer than the cursor; false for a repeat. */
  accept(id) {
    if (this.value !== null && id <= this.value) return false;
    this._set(id);
    return true;
  }

  /** Moves forward to `id` (a poll's `next`), never back. */
  advance(id) {
    if (this.value === null || id > this.value) this._set(id);
  }

  /** Moves to `id` whatever it was (a `reset`: the server's present may be below the cursor). */
  moveTo(id) {
    this._set(id);
  }

  _set(id) {
    this.value = id;
    save(this._storage, this._key, id);
  }
}

/** Messages waiting to be sent, oldest first, kept in storage. */
export class Outbox {
  /**
   * @param {{getItem, setItem, removeItem}} [storage]
   * @param {string} [key]
   */
  constructor(storage = new MemoryStorage(), key = "outbox") {
    this._storage = storage;
    this._key = key;
    const stored = load(storage, key, []);
    this._items = Array.isArray(stored) ? stored.filter((m) => m && typeof m.clientMessageId === "string") : [];
  }

  /** A copy of the pending messages, oldest first. */
  get items() {
    return this._items.map((m) => ({ ...m }));
  }

  get size() {
    return this._items.length;
  }

  /** The oldest pending message, or undefined. */
  head() {
    return this._items[0];
  }

  has(clientMessageId) {
    return this._items.some((m) => m.clientMessageId === clientMessageId);
  }

  add(message) {
    this._items.push({ ...message });
    this._save();
  }

  remove(clientMessageId) {
    this._items = this._items.filter((m) => m.clientMessageId !== clientMessageId);
    this._save();
  }

  _save() {
    save(this._storage, this._key, this._items.length ? this._items : null);
  }
}

// ---------------------------------------------------------------------------------------------
// Transport decisions

/**
 * Watches one SSE stream for muting: no byte within `firstByteTimeout` of opening, or no byte
 * for `silenceTimeout` after the last one (the server pings every 15 s). Times are the caller's.
 */
export class StreamWatch {
  /** @param {{firstByteTimeout: number, silenceTimeout: number}} timeouts */
  constructor({ firstByteTimeout, silenceTimeout }) {
    this.firstByteTimeout = firstByteTimeout;
    this.silenceTimeout = silenceTimeout;
    this.openedAt = 0;
    this.lastByteAt = null;
  }

  /** The stream was opened at `now`. */
  open(now) {
    this.openedAt = now;
    this.lastByteAt = null;
  }

  /** Bytes arrived at `now`; true when they are the stream's first. */
  bytes(now) {
    const first = this.lastByteAt === null;
    this.lastByteAt = now;
    return first;
  }

  /** When the stream counts as muted if nothing more arrives. */
  deadline() {
    return this.lastByteAt === null ? this.openedAt + this.firstByteTimeout : this.lastByteAt + this.silenceTimeout;
  }

  /** null while the stream is fine at `now`; else why it is muted: "first-byte" or "silence". */
  check(now) {
    if (now < this.deadline()) return null;
    return this.lastByteAt === null ? "first-byte" : "silence";
  }
}

/**
 * Chooses the transport. "sse" and "poll" modes stay put; "auto" starts on SSE, switches to poll
 * when a stream is muted, remembers that for the origin in storage (so the next start goes
 * straight to poll), tries SSE again `sseRetryAfter` ms after the switch, and forgets the
 * switch once a stream works.
 */
export class TransportPolicy {
  /**
   * @param {{mode?: "auto"|"sse"|"poll", sseRetryAfter?: number, storage?: object, key?: string}} options
   */
  constructor({ mode = "auto", sseRetryAfter = DEFAULTS.sseRetryAfter, storage = new MemoryStorage(), key = "transport" } = {}) {
    this.mode = mode;
    this.sseRetryAfter = sseRetryAfter;
    this._storage = storage;
    this._key = key;
  }

  /** The remembered switch to poll, `{transport: "poll", at}`, or null. */
  remembered() {
    const r = load(this._storage, this._key, null);
    return r && r.transport === "poll" && Number.isFinite(r.at) ? r : null;
  }

  /** The transport to start with at `now`. */
  initial(now) {
    if (this.mode !== "auto") return this.mode;
    const at = this.sseRetryAt();
    return at !== null && now < at ? "poll" : "sse";
  }

  /** A stream was muted at `now`: the transport to go on with. */
  muted(now) {
    if (this.mode !== "auto") return this.mode;
    save(this._storage, this._key, { transport: "poll", at: now });
    return "poll";
  }

  /** A stream received its first bytes: SSE works from here. */
  sseWorks() {
    if (this.mode === "auto" && this.remembered()) save(this._storage, this._key, null);
  }

  /** When a client on poll should try SSE again, or null (never: not in "auto", or no switch). */
  sseRetryAt() {
    if (this.mode !== "auto") return null;
    const r = this.remembered();
    return r ? r.at + this.sseRetryAfter : null;
  }

  /** Whether a client on poll should try SSE again at `now`. */
  shouldRetrySse(now) {
    const at = this.sseRetryAt();
    return at !== null && now >= at;
  }
}

/**
 * Reconnect and retry delays: doubling from `base` up to `max` with each failure, never below
 * the floor a caller gives (the stream's `retry:`, a `Retry-After`), plus up to `jitter` of the
 * delay at random, so that clients cut off together do not come back together.
 */
export class Backoff {
  /** @param {{base?: number, max?: number, jitter?: number, random?: () => number}} options */
  constructor({ base = 1000, max = 30000, jitter = 0.5, random = Math.random } = {}) {
    this.base = base;
    this.max = max;
    this.jitter = jitter;
    this.random = random;
    this.attempt = 0;
  }

  /** The next delay in ms: at least `floor`; each call doubles the backoff of the next. */
  next(floor = 0) {
    const backoff = Math.min(this.max, this.base * 2 ** Math.min(this.attempt, 30));
    const delay = Math.max(floor, backoff);
    this.attempt += 1;
    return Math.round(delay * (1 + this.jitter * this.random()));
  }

  /** A connection worked: the next delay starts from the floor again. */
  reset() {
    this.attempt = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const systemClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};

/** The user id (`sub`) a JWT names, read without checking it (the server does), or null. */
export function tokenUser(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims.sub === undefined || claims.sub === null ? null : String(claims.sub);
  } catch {
    return null;
  }
}

/** The origin `baseUrl` points at ("" = the page's own). */
function originOf(baseUrl) {
  try {
    return new URL(baseUrl || "/", globalThis.location?.href).origin;
  } catch {
    return baseUrl || "";
  }
}

function newClientMessageId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  return `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** An object without its undefined fields. */
function defined(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

/** An upload's body: a Blob as it is, bytes as a Uint8Array, a string as UTF-8. */
function uploadBody(file) {
  if (typeof Blob !== "undefined" && file instanceof Blob) return file;
  if (file instanceof ArrayBuffer) return new Uint8Array(file);
  if (ArrayBuffer.isView(file)) return new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  if (typeof file === "string") return new TextEncoder().encode(file);
  throw new TypeError("upload takes a Blob, a File, an ArrayBuffer, a typed array or a string");
}

function isEventStream(res) {
  return (res.headers.get("content-type") || "").toLowerCase().startsWith("text/event-stream");
}

// ---------------------------------------------------------------------------------------------
// The client

/**
 * @typedef {object} ChinwagOptions
 * @property {string} [baseUrl] the server, e.g. "http://127.0.0.1:8080"; "" (default) = same origin
 * @property {string} [token] a client token
 * @property {() => Promise<string>|string} [getToken] asked for a token at start and after a 401
 * @property {string} [userId] the user's id (default: the token's `sub`); names the user's stored state
 * @property {{getItem, setItem, removeItem}} [storage] keeps cursor, outbox and transport choice
 * @property {string} [storagePrefix] prefix of the storage keys (default "chinwag")
 * @property {"auto"|"sse"|"poll"} [transport] default "auto"
 * @property {number} [firstByteTimeout] ms; a fresh stream silent this long is muted (5000)
 * @property {number} [silenceTimeout] ms; a stream silent this long after a byte is muted (35000)
 * @property {number} [sseRetryAfter] ms on poll before trying SSE again (300000)
 * @property {number} [pollTimeout] seconds a long-poll is held by the server (25, at most 60)
 * @property {number} [requestTimeout] ms for a request's whole answer (30000; 0 = none)
 * @property {typeof fetch} [fetch] the fetch to use (default: the global one)
 * @property {{now: () => number, setTimeout: Function, clearTimeout: Function}} [clock] for tests
 * @property {() => number} [random] for tests: the jitter's source
 */

/** A connection to a Chinwag server as one user: events in, requests and messages out. */
export class Chinwag {
  /** @param {ChinwagOptions} options */
  constructor(options = {}) {
    const o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
    if (!o.token && typeof o.getToken !== "function") throw new TypeError("Chinwag needs a token or a getToken function");
    if (!["auto", "sse", "poll"].includes(o.transport)) throw new TypeError(`transport must be "auto", "sse" or "poll", not ${JSON.stringify(o.transport)}`);
    this._o = o;
    this._base = String(o.baseUrl).replace(/\/+$/, "");
    this._fetch = o.fetch || ((...args) => globalThis.fetch(...args));
    this._clock = o.clock || systemClock;
    this._storage = o.storage || new MemoryStorage();
    this._prefix = `${o.storagePrefix}:${originOf(this._base)}`;
    this._policy = new TransportPolicy({
      mode: o.transport,
      sseRetryAfter: o.sseRetryAfter,
      storage: this._storage,
      key: `${this._prefix}:transport`,
    });
    this._listeners = new Map();
    this._tokenValue = o.token || null;
    this._tokenPending = null;
    this._dead = null; // the 401 that ended a fixed token
    this._user = null;
    this._cursor = null; // Cursor and Outbox of the user, once known
    this._outbox = null;
    this._early = []; // sends before the user is known (getToken without userId), in memory
    this._transport = "offline";
    this._running = false;
    this._gen = 0; // bumped by start and stop: a loop of an older generation ends
    this._abort = null;
    this._sleepers = new Set();
    this._queue = [];
    this._resetting = null;
    this._serverRetry = 0;
    this._receiveBackoff = new Backoff({ random: o.random });
    this._sendBackoff = new Backoff({ random: o.random });
    this._waiters = new Map();
    this._pumping = false;
    this._paused = false;
    this._onOnline = () => this._wake(() => true);
    const user = o.userId ?? (o.token ? tokenUser(o.token) : null);
    if (o.userId != null || o.token) this._bind(user);
  }

  // --- state -----------------------------------------------------------------------------------

  /** @returns {"sse"|"poll"|"offline"} how events arrive now */
  get transport() {
    return this._transport;
  }

  /** @returns {number|null} the id of the last stored event delivered, or null */
  get cursor() {
    return this._cursor ? this._cursor.value : null;
  }

  /** @returns {Array<{clientMessageId: string, chatId: number, text: string}>} pending sends, oldest first */
  get outbox() {
    return this._outbox ? this._outbox.items : this._early.map((m) => ({ ...m }));
  }

  /** @returns {string|null} the user this client speaks for, once known */
  get userId() {
    return this._user;
  }

  // --- events ----------------------------------------------------------------------------------

  /**
   * Listens to a pushed event type (`message`, `typing`, …, or "*" for every pushed event:
   * `fn(data, event)` with `event = {id?, type, data}`), or to the client's own `transport`,
   * `reset`, `outbox`, `outboxSent`, `outboxFailed` and `error`.
   * @param {string} type
   * @param {Function} fn
   * @returns {() => void} removes the listener
   */
  on(type, fn) {
    if (typeof fn !== "function") throw new TypeError("on(type, fn) needs a function");
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener added with `on`. */
  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  _emit(type, ...args) {
    for (const fn of [...(this._listeners.get(type) || [])]) {
      try {
        fn(...args);
      } catch (err) {
        if (type !== "error") this._emit("error", err);
      }
    }
  }

  /** A pushed event to its type's listeners (not a client event's) and to "*". */
  _deliver(event) {
    if (!CLIENT_EVENTS.has(event.type)) this._emit(event.type, event.data, event);
    this._emit("*", event.data, event);
  }

  _setTransport(t) {
    if (t === this._transport) return;
    this._transport = t;
    this._emit("transport", t);
    if (t !== "offline") this._wake((s) => s.online);
  }

  // --- lifecycle -------------------------------------------------------------------------------

  /** Opens the event stream (or poll loop) and sends what waits in the outbox. */
  start() {
    if (this._dead) {
      this._emit("error", this._dead);
      return this;
    }
    this._paused = false;
    if (!this._running) {
      this._running = true;
      const gen = ++this._gen;
      // A browser that says the network is back cuts every wait short.
      globalThis.addEventListener?.("online", this._onOnline);
      this._receive(gen).catch((err) => this._emit("error", err));
    }
    this._pump();
    return this;
  }

  /** Closes the stream, ends the loops and their timers; the outbox keeps what waits. */
  stop() {
    this._running = false;
    this._paused = true;
    this._gen += 1;
    globalThis.removeEventListener?.("online", this._onOnline);
    if (this._abort) this._abort.abort();
    this._wake(() => true);
    this._setTransport("offline");
    return this;
  }

  _live(gen) {
    return this._running && gen === this._gen;
  }

  /** Waits `ms`, or less when stop() (or, with `online`, a connection coming back) wakes it. */
  _sleep(ms, { online = false } = {}) {
    return new Promise((resolve) => {
      const sleeper = { online, done: null };
      const timer = this._clock.setTimeout(() => sleeper.done(), ms);
      sleeper.done = () => {
        this._clock.clearTimeout(timer);
        this._sleepers.delete(sleeper);
        resolve();
      };
      this._sleepers.add(sleeper);
    });
  }

  _wake(which) {
    for (const s of [...this._sleepers]) if (which(s)) s.done();
  }

  // --- tokens ----------------------------------------------------------------------------------

  /** The user's stored state, once the user is known. */
  _bind(user) {
    if (this._cursor) return;
    this._user = user;
    const key = `${this._prefix}:${encodeURIComponent(user ?? "")}`;
    this._cursor = new Cursor(this._storage, `${key}:cursor`);
    this._outbox = new Outbox(this._storage, `${key}:outbox`);
    // What was sent before the user was known joins the user's outbox, after what it restored.
    for (const m of this._early) if (!this._outbox.has(m.clientMessageId)) this._outbox.add(m);
    this._early = [];
    if (this._outbox.size > 0) this._emit("outbox", this.outbox);
  }

  /** The token to use: the one held, or a new one from getToken. */
  async _token() {
    if (this._tokenValue) return this._tokenValue;
    if (this._dead) throw this._dead;
    if (!this._tokenPending) {
      this._tokenPending = (async () => {
        try {
          const t = await this._o.getToken();
          if (typeof t !== "string" || t === "") {
            throw new ChinwagError({ code: "token_unavailable", message: "getToken gave no token" });
          }
          this._tokenValue = t;
          this._bind(this._o.userId ?? tokenUser(t));
          return t;
        } finally {
          this._tokenPending = null;
        }
      })();
    }
    return this._tokenPending;
  }

  /** `token` got a 401: ask getToken next time, or, for a fixed token, go offline for good. */
  _refused(token, err) {
    if (this._tokenValue !== token) return;
    this._tokenValue = null;
    if (this._o.getToken || this._dead) return;
    this._dead = err;
    this._emit("error", err);
    this.stop();
    for (const id of [...this._waiters.keys()]) this._settle(id, err);
  }

  // --- HTTP ------------------------------------------------------------------------------------

  _url(path) {
    return this._base + path;
  }

  /**
   * One request, its answer read whole within `timeout` ms: `{status, headers, json}`.
   * @throws {ChinwagError} status 0 when no answer came
   */
  async _http(method, path, { token, body, headers = {}, timeout = this._o.requestTimeout }) {
    const ac = new AbortController();
    let timedOut = false;
    const timer = timeout > 0 ? this._clock.setTimeout(() => ((timedOut = true), ac.abort()), timeout) : null;
    try {
      const res = await this._fetch(this._url(path), {
        method,
        headers: { Authorization: `Bearer ${token}`, ...headers },
        body,
        signal: ac.signal,
      });
      const text = await res.text();
      let json = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          if (res.ok) throw new ChinwagError({ status: res.status, code: "bad_response", message: "the answer is not JSON" });
        }
      }
      return { status: res.status, headers: res.headers, json };
    } catch (err) {
      if (err instanceof ChinwagError) throw err;
      if (timedOut) throw new ChinwagError({ code: "timeout", message: `no answer to ${method} ${path} within ${timeout} ms`, cause: err });
      throw asChinwagError(err);
    } finally {
      if (timer !== null) this._clock.clearTimeout(timer);
    }
  }

  /** A request with the token, asking getToken again once after a 401. Resolves to the JSON. */
  async _call(method, path, { json, body, headers = {}, timeout } = {}) {
    if (json !== undefined) {
      body = JSON.stringify(json);
      headers = { ...headers, "Content-Type": "application/json" };
    }
    for (let refreshed = false; ; refreshed = true) {
      const token = await this._token();
      const res = await this._http(method, path, { token, body, headers, timeout });
      if (res.status >= 200 && res.status < 300) return res.json;
      const err = errorOfAnswer(res.status, res.json, res.headers);
      if (res.status === 401) {
        this._refused(token, err);
        if (!refreshed && this._o.getToken) continue;
      }
      throw err;
    }
  }

  /**
   * Sends any client request type and resolves to the answer's `data` (null for a 204).
   * @param {string} type e.g. "opponentStatus", "renameChat"
   * @param {object} [data]
   * @returns {Promise<any>}
   * @throws {ChinwagError}
   */
  async request(type, data) {
    const envelope = data === undefined ? { type } : { type, data };
    const json = await this._call("POST", `/v1/${encodeURIComponent(type)}`, { json: envelope });
    return json && typeof json === "object" && "data" in json ? json.data : null;
  }

  // --- the request API -------------------------------------------------------------------------

  /** @returns {Promise<{chats: object[], users: object[]}>} the chat list (`count`, `before`, `beforeId` to page) */
  chats(options = {}) {
    return this.request("chats", defined({ count: options.count, before: options.before, beforeId: options.beforeId }));
  }

  /** @returns {Promise<{chat: object, users: object[]}>} */
  chat(chatId) {
    return this.request("chat", { chatId });
  }

  /** @returns {Promise<{chat: object, users: object[]}>} a direct chat (one user) or a group */
  createChat({ userIds, name } = {}) {
    return this.request("createChat", defined({ userIds, name }));
  }

  /** @returns {Promise<{messages: object[], users: object[], hasMore: boolean}>} one page */
  history(chatId, { before, after, limit } = {}) {
    return this.request("history", defined({ chatId, before, after, limit }));
  }

  /** Tells the chat's other members that the user types (or stopped); `message` is a preview. */
  typing(chatId, status = "typing", message) {
    return this.request("typing", defined({ chatId, status, message }));
  }

  /** Marks every message up to `messageId` read. */
  markRead(chatId, messageId) {
    return this.request("messageStatus", { status: "read", chatId, messageId });
  }

  /** Marks every message up to `messageId` delivered (the server does so by itself on delivery). */
  markDelivered(chatId, messageId) {
    return this.request("messageStatus", { status: "delivered", chatId, messageId });
  }

  /**
   * Uploads a file (`POST /v1/files`, the raw bytes) and resolves to its File object, whose
   * `id` a message's `fileId` takes.
   * @param {Blob|ArrayBuffer|ArrayBufferView|string} file
   * @param {{name?: string, contentType?: string}} [options]
   * @returns {Promise<{id: string, title: string, url: string, thumbnail: string|null, mimeType: string, size: number}>}
   */
  async upload(file, { name, contentType } = {}) {
    const body = uploadBody(file);
    const title = name ?? (typeof file?.name === "string" ? file.name : "file");
    const type = contentType || (typeof file?.type === "string" && file.type) || "application/octet-stream";
    const json = await this._call("POST", `/v1/files?name=${encodeURIComponent(title)}`, {
      body,
      headers: { "Content-Type": type },
      timeout: 0,
    });
    return json.data;
  }

  // --- sending ---------------------------------------------------------------------------------

  /**
   * Sends a message through the outbox and resolves to the stored Message. Retries (network
   * errors, 5xx, 429 after its Retry-After) reuse the clientMessageId, so the message is stored
   * once; any other 4xx rejects at once. Messages go out one at a time, in the order sent. The
   * message is queued before any token is asked for: without one yet (getToken failing while
   * offline), it waits in the outbox like any other.
   * @param {number} chatId
   * @param {string} text
   * @param {{type?: string, params?: object, fileId?: string, clientMessageId?: string}} [options]
   * @returns {Promise<object>} the Message
   * @throws {ChinwagError}
   */
  async send(chatId, text, { type, params, fileId, clientMessageId } = {}) {
    if (this._dead) throw this._dead;
    const message = defined({ clientMessageId: clientMessageId ?? newClientMessageId(), chatId, type, text: text ?? "", params, fileId });
    const id = message.clientMessageId;
    const result = new Promise((resolve, reject) => {
      if (!this._waiters.has(id)) this._waiters.set(id, []);
      this._waiters.get(id).push({ resolve, reject });
    });
    const queued = this._outbox ? this._outbox.has(id) : this._early.some((m) => m.clientMessageId === id);
    if (!queued) {
      if (this._outbox) this._outbox.add(message);
      else this._early.push(message);
      this._emit("outbox", this.outbox);
    }
    this._paused = false;
    this._pump();
    return result;
  }

  _settle(clientMessageId, err, message) {
    const waiters = this._waiters.get(clientMessageId) || [];
    this._waiters.delete(clientMessageId);
    for (const w of waiters) err ? w.reject(err) : w.resolve(message);
  }

  /**
   * Sends the outbox, oldest first, until it is empty or paused. Emits `outboxSent` or
   * `outboxFailed` for each message that leaves it, then `outbox`.
   */
  async _pump() {
    if (this._pumping || (!this._outbox && this._early.length === 0)) return;
    this._pumping = true;
    try {
      while (!this._paused && (this._outbox ? this._outbox.size : this._early.length) > 0) {
        // The token (and with it the user, and so the outbox) is needed only now, to send.
        try {
          await this._token();
        } catch {
          if (this._paused || this._dead) break; // a dead token
          await this._sleep(this._sendBackoff.next(), { online: true });
          continue;
        }
        const message = this._outbox.head();
        const id = message.clientMessageId;
        let sent;
        try {
          sent = await this.request("message", { messages: [message] });
        } catch (e) {
          const err = asChinwagError(e);
          if (this._paused) break; // a dead token: the message stays for a client with a good one
          // Without a token (getToken failed after a 401) the message was not what failed.
          if (isRetryable(err) || err.status === 401 || !this._tokenValue) {
            const floor = err.retryAfter !== null ? err.retryAfter * 1000 : 0;
            await this._sleep(this._sendBackoff.next(floor), { online: err.status !== 429 });
            continue;
          }
          this._outbox.remove(id);
          this._settle(id, err);
          this._emit("outboxFailed", { ...message }, err);
          this._emit("outbox", this.outbox);
          continue;
        }
        this._sendBackoff.reset();
        this._outbox.remove(id);
        const stored = sent?.messages?.[0];
        this._settle(id, null, stored);
        this._emit("outboxSent", { ...message }, stored ?? null);
        this._emit("outbox", this.outbox);
      }
    } finally {
      this._pumping = false;
    }
  }

  // --- receiving -------------------------------------------------------------------------------

  /** The receive loop of one start(): connect, read, reconnect, switch transports, until stop. */
  async _receive(gen) {
    let mode = this._policy.initial(this._clock.now());
    let fresh = true; // the next poll is the first since a (re)connect: it is not held
    while (this._live(gen)) {
      if (mode === "poll" && this._policy.shouldRetrySse(this._clock.now())) mode = "sse";
      const out = await this._connectOnce(gen, mode, fresh);
      if (!this._live(gen) || out.kind === "stopped") break;
      if (out.kind === "ok") {
        fresh = false;
        continue;
      }
      if (out.kind === "interrupted") continue;
      if (out.kind === "muted") {
        mode = this._policy.muted(this._clock.now());
        fresh = true;
        if (mode === "poll") continue;
      }
      if (out.kind === "error" && !out.quiet) this._emit("error", out.error);
      this._setTransport("offline");
      fresh = true;
      await this._sleep(this._receiveBackoff.next(out.floor ?? this._serverRetry));
    }
  }

  /**
   * One connection of the loop: an SSE stream, or one poll. Without a cursor yet, an unheld poll
   * first learns the present (its `next`), so that a stream that drops before its first stored
   * event resumes from there rather than from "now" again.
   */
  async _connectOnce(gen, mode, fresh) {
    try {
      await this._token();
      if (!this._live(gen)) return { kind: "stopped" };
      this._pump(); // the outbox restored from storage is known once the user is
      if (mode === "sse" && this._cursor.value === null) return await this._pollOnce(gen, { fresh: true, report: false });
      if (mode === "sse") return await this._streamOnce(gen);
      return await this._pollOnce(gen, { fresh, report: true });
    } catch (err) {
      if (!this._live(gen)) return { kind: "stopped" };
      return { kind: "error", error: asChinwagError(err), floor: 0 };
    }
  }

  /** Why a stream or poll got no success: the outcome the loop acts on. */
  _failed(status, json, headers, token) {
    const error = errorOfAnswer(status, json, headers);
    if (status === 401) {
      this._refused(token, error);
      return { kind: "error", error, floor: 0, quiet: true };
    }
    const floor = error.retryAfter !== null ? error.retryAfter * 1000 : this._serverRetry;
    return { kind: "error", error, floor, quiet: status === 503 };
  }

  /** One SSE stream, from opening to its end: `ended`, `muted`, `error` or `stopped`. */
  async _streamOnce(gen) {
    const token = await this._token();
    if (!this._live(gen)) return { kind: "stopped" };
    const ac = new AbortController();
    this._abort = ac;
    const watch = new StreamWatch(this._o);
    watch.open(this._clock.now());
    let muted = null;
    let timer = null;
    const arm = () => {
      timer = this._clock.setTimeout(() => {
        muted = watch.check(this._clock.now());
        if (muted) ac.abort();
        else arm();
      }, Math.max(0, watch.deadline() - this._clock.now()));
    };
    arm();
    try {
      const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
      if (this._cursor.value !== null) headers["Last-Event-ID"] = String(this._cursor.value);
      const res = await this._fetch(this._url("/v1/events"), { headers, signal: ac.signal });
      if (res.status !== 200) {
        const text = await res.text().catch(() => "");
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {}
        return this._failed(res.status, json, res.headers, token);
      }
      if (!isEventStream(res) || !res.body) {
        res.body?.cancel().catch(() => {});
        return { kind: "muted", reason: "not an event stream" };
      }
      const reader = res.body.getReader();
      const parser = new SseParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value || value.length === 0) continue;
        if (watch.bytes(this._clock.now())) this._streamWorks();
        for (const item of parser.push(value)) this._sseItem(item);
      }
      return { kind: "ended", floor: this._serverRetry, quiet: true };
    } catch (err) {
      if (muted) return { kind: "muted", reason: muted };
      if (!this._live(gen)) return { kind: "stopped" };
      return { kind: "error", error: asChinwagError(err), floor: this._serverRetry, quiet: true };
    } finally {
      this._clock.clearTimeout(timer);
      if (this._abort === ac) this._abort = null;
    }
  }

  /** A stream's first bytes arrived: it is open and not muted. */
  _streamWorks() {
    this._receiveBackoff.reset();
    this._policy.sseWorks();
    this._setTransport("sse");
  }

  _sseItem(item) {
    if (item.type === "retry") {
      this._serverRetry = item.ms;
      return;
    }
    if (item.type !== "event") return;
    let envelope;
    try {
      envelope = JSON.parse(item.data);
    } catch {
      this._emit("error", new ChinwagError({ code: "bad_response", message: `an event that is not JSON: ${item.data.slice(0, 64)}` }));
      return;
    }
    const id = item.id !== undefined && /^[0-9]+$/.test(item.id) ? Number(item.id) : undefined;
    this._enqueue({ id, type: envelope?.type ?? item.event, data: envelope?.data });
  }

  /**
   * One long-poll: `ok` once answered, `interrupted` when it is time to try SSE again, `error`
   * or `stopped`. `fresh`: ask for what is there now without holding (a quick first answer).
   * `report`: poll is the transport, so an answer sets it.
   */
  async _pollOnce(gen, { fresh, report }) {
    await this._drained(); // the cursor includes everything received
    const token = await this._token();
    if (!this._live(gen)) return { kind: "stopped" };
    const ac = new AbortController();
    this._abort = ac;
    const hold = fresh ? 0 : Math.min(60, Math.max(0, Math.round(this._o.pollTimeout)));
    let why = null;
    const stop = (reason) => () => ((why = reason), ac.abort());
    const deadline = this._clock.setTimeout(stop("timeout"), hold * 1000 + POLL_GRACE_MS);
    const retryAt = report ? this._policy.sseRetryAt() : null;
    const sseTimer = retryAt === null ? null : this._clock.setTimeout(stop("sse"), Math.max(0, retryAt - this._clock.now()));
    try {
      const query = new URLSearchParams({ timeout: String(hold) });
      if (this._cursor.value !== null) query.set("since", String(this._cursor.value));
      const res = await this._fetch(this._url(`/v1/poll?${query}`), {
        headers: { Authorization: `Bearer ${token}` },
        signal: ac.signal,
      });
      const text = await res.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {}
      if (res.status !== 200) return this._failed(res.status, json, res.headers, token);
      if (!json || !Array.isArray(json.events) || !Number.isSafeInteger(json.next)) {
        const error = new ChinwagError({ status: 200, code: "bad_response", message: "a poll answer without events and next" });
        return { kind: "error", error, floor: 0 };
      }
      this._receiveBackoff.reset();
      if (report) this._setTransport("poll");
      for (const e of json.events) this._enqueue({ id: Number.isSafeInteger(e.id) ? e.id : undefined, type: e.type, data: e.data });
      this._enqueue({ advance: json.next });
      return { kind: "ok" };
    } catch (err) {
      if (why === "sse") return { kind: "interrupted" };
      if (!this._live(gen)) return { kind: "stopped" };
      return { kind: "error", error: asChinwagError(err), floor: 0, quiet: true };
    } finally {
      this._clock.clearTimeout(deadline);
      if (sseTimer !== null) this._clock.clearTimeout(sseTimer);
      if (this._abort === ac) this._abort = null;
    }
  }

  // --- delivery: the cursor's order, exactly once ----------------------------------------------

  /** Queues a received event (or a poll's `{advance: next}`) and delivers what can go now. */
  _enqueue(item) {
    this._queue.push(item);
    if (!this._resetting) this._deliverQueued();
  }

  _deliverQueued() {
    while (this._queue.length > 0 && !this._resetting) {
      const item = this._queue.shift();
      if (item.advance !== undefined) {
        this._cursor.advance(item.advance);
      } else if (item.type === "reset") {
        // What came after the reset waits until the app has the fresh chat list.
        this._resetting = this._reset(item).finally(() => {
          this._resetting = null;
          this._deliverQueued();
        });
      } else if (item.id === undefined) {
        this._deliver({ type: item.type, data: item.data });
      } else if (this._cursor.accept(item.id)) {
        this._deliver({ id: item.id, type: item.type, data: item.data });
      }
    }
  }

  /** Resolves once every queued event is delivered (a reset's refetch may hold them). */
  async _drained() {
    while (this._resetting) await this._resetting;
  }

  /** A `reset`: the cursor moves to the present, the chat list is refetched, the app told. */
  async _reset(item) {
    if (item.id !== undefined) this._cursor.moveTo(item.id);
    let page = null;
    for (let attempt = 1; attempt <= RESET_TRIES && page === null; attempt++) {
      try {
        page = await this.chats();
      } catch (err) {
        this._emit("error", err);
        if (attempt < RESET_TRIES) await new Promise((r) => this._clock.setTimeout(r, 1000 * attempt));
      }
    }
    const data = { chats: page ? page.chats : null, users: page ? page.users : null, reason: item.data?.reason ?? null };
    this._deliver({ id: item.id, type: "reset", data });
  }
}
