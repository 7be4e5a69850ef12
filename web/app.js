// Chinwag demo app: a small chat client on top of the client module (/v1/client.js).
// Plain DOM, no framework. User text only ever reaches the page as text nodes.

import { Chinwag, ChinwagError } from "/v1/client.js";

const SESSION_KEY = "chinwag.session";
const LAST_CHAT_KEY = "chinwag.lastChat";
const USER_ID = /^[A-Za-z0-9_.@:-]{1,64}$/;
const RUN_GAP_MS = 5 * 60 * 1000; // messages closer than this from one author form a run
const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOW_MS = 6000;
const PAGE = 50;
const RANK = { pending: -1, sent: 0, delivered: 1, read: 2 };
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const state = {
  session: null,   // {userId, token, dev}
  token: null,     // the token in use (for file URLs)
  client: null,
  chats: new Map(),      // chatId -> Chat
  chatsLoaded: false,
  fetchingChats: new Map(), // chatId -> Promise, for events about a chat not listed yet
  users: new Map(),      // userId -> User
  presence: new Map(),   // userId -> {status, lastSeen}
  msgs: new Map(),       // chatId -> {byId, pending, hasMore, loaded, loading, readSent}
  marks: new Map(),      // chatId -> Map(userId -> {delivered, read}), others' receipts
  typing: new Map(),     // chatId -> Map(userId -> timer)
  openChatId: null,
  nodes: new Map(),      // message key -> {node, sig} for the open chat
  atBottom: true,
  transport: "connecting",
  outbox: [],
  localPreviews: new Map(), // clientMessageId -> object URL of an image being sent
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, props = {}, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") n.className = v;
    else if (k === "text") n.textContent = v;
    else if (k === "hue") n.style.setProperty("--hue", String(v));
    else if (k.startsWith("on") && typeof v === "function") n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) n.append(kid);
  return n;
}

function icon(name, cls) {
  const svg = document.createElementNS(SVG_NS, "svg");
  if (cls) svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

function hue(id) {
  let x = 0;
  for (const ch of String(id)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

function initials(name) {
  const words = String(name).trim().split(/[\s._@-]+/).filter(Boolean);
  if (words.length === 0) return "?";
  const first = [...words[0]][0] || "?";
  const second = words.length > 1 ? [...words[words.length - 1]][0] : "";
  return (first + second).toUpperCase();
}

function avatar(id, name, cls = "") {
  return h("div", { class: `avatar ${cls}`.trim(), hue: hue(id), "aria-hidden": "true", text: initials(name) });
}

function setAvatar(node, id, name, online) {
  node.textContent = initials(name);
  node.style.setProperty("--hue", String(hue(id)));
  node.classList.toggle("online", !!online);
}

let toastTimer = new Map();
function toast(text) {
  if (toastTimer.has(text)) return; // the same message is already showing
  const t = h("div", { class: "toast", "data-testid": "toast", role: "status", text });
  $("toasts").append(t);
  toastTimer.set(text, setTimeout(() => { t.remove(); toastTimer.delete(text); }, 4500));
}

function errorText(err) {
  if (err instanceof ChinwagError) return err.message || `Request failed (${err.status})`;
  return (err && err.message) || String(err);
}

// ---------------------------------------------------------------- time

function dateOf(iso) { return iso ? new Date(iso) : new Date(); }
function sameDay(a, b) { return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate(); }
function dayKey(d) { return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`; }
function clock(d) { return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }); }

function dayLabel(d) {
  const now = new Date();
  const yesterday = new Date(now); yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, now)) return "Today";
  if (sameDay(d, yesterday)) return "Yesterday";
  if (now - d < 6 * 864e5) return d.toLocaleDateString(undefined, { weekday: "long" });
  const opts = { weekday: "short", day: "numeric", month: "short" };
  if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString(undefined, opts);
}

function listTime(d) {
  const now = new Date();
  if (sameDay(d, now)) return clock(d);
  const yesterday = new Date(now); yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, yesterday)) return "Yesterday";
  if (now - d < 6 * 864e5) return d.toLocaleDateString(undefined, { weekday: "short" });
  return d.toLocaleDateString(undefined, { day: "numeric", month: "short", year: d.getFullYear() === now.getFullYear() ? undefined : "2-digit" });
}

function lastSeenText(iso) {
  if (!iso) return "offline";
  const d = new Date(iso);
  const now = new Date();
  if (now - d < 60e3) return "last seen just now";
  if (sameDay(d, now)) return `last seen today at ${clock(d)}`;
  return `last seen ${dayLabel(d).toLowerCase() === "yesterday" ? "yesterday" : d.toLocaleDateString(undefined, { day: "numeric", month: "short" })} at ${clock(d)}`;
}

// ---------------------------------------------------------------- sessions and tokens

function b64urlJson(part) {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

function tokenClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("That is not a token: a token has three parts separated by dots.");
  let claims;
  try { claims = b64urlJson(parts[1]); } catch { throw new Error("That token's payload cannot be read."); }
  if (claims.sub == null) throw new Error("That token names no user (no sub claim).");
  return claims;
}

function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (s && typeof s.userId === "string" && typeof s.token === "string") return s;
  } catch { /* a broken entry is the same as none */ }
  return null;
}

function saveSession(s) { localStorage.setItem(SESSION_KEY, JSON.stringify(s)); }

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let json = null;
  try { json = await res.json(); } catch { /* an empty or non-JSON body */ }
  if (!res.ok) {
    const e = json && json.error;
    throw new ChinwagError({ status: res.status, code: e ? e.reason : "http_error", message: e ? e.message : `HTTP ${res.status}` });
  }
  return json;
}

async function devEnabled() {
  try { return (await api("/v1/dev")).data.dev === true; } catch { return false; }
}

async function mintDevToken(userId) {
  const res = await api("/v1/dev/token", { data: { userId } });
  return res.data.token;
}

function tokenFresh(token) {
  try { return tokenClaims(token).exp * 1000 > Date.now() + 60e3; } catch { return false; }
}

// ---------------------------------------------------------------- sign in

async function showSignin(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  const err = $("signin-error");
  err.hidden = !error;
  err.textContent = error || "";
  $("dev-signin").hidden = !(await devEnabled());
}

async function signInDev(userId) {
  userId = userId.trim();
  if (!USER_ID.test(userId)) {
    showSignin("A user id is 1–64 letters, digits or _ . @ : -");
    return;
  }
  try {
    const token = await mintDevToken(userId);
    const session = { userId, token, dev: true };
    saveSession(session);
    startApp(session);
  } catch (e) {
    showSignin(`Could not sign in: ${errorText(e)}`);
  }
}

async function signInToken(raw) {
  const token = raw.trim().replace(/^Bearer\s+/i, "");
  let claims;
  try { claims = tokenClaims(token); } catch (e) { showSignin(e.message); return; }
  if (claims.exp && claims.exp * 1000 < Date.now()) { showSignin("That token has expired."); return; }
  const userId = String(claims.sub);
  // Check the token with the server before keeping it.
  try {
    const res = await fetch("/v1/chats", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ data: { count: 1 } }),
    });
    if (res.status === 401) {
      const j = await res.json().catch(() => null);
      showSignin(`The server refused that token: ${j && j.error ? j.error.message : "token_invalid"}`);
      return;
    }
  } catch { /* unreachable now: keep the token, the client reconnects */ }
  const session = { userId, token, dev: false };
  saveSession(session);
  startApp(session);
}

function signOut() {
  if (state.client) state.client.stop();
  localStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(LAST_CHAT_KEY);
  location.reload();
}

// ---------------------------------------------------------------- names

function userName(id) {
  const u = state.users.get(id);
  const full = u ? [u.firstName, u.lastName].filter(Boolean).join(" ") : "";
  return full || String(id);
}

function addUsers(users) {
  for (const u of users || []) state.users.set(u.id, u);
}

function otherMembers(chat) { return (chat.users || []).filter((u) => u.id !== state.session.userId); }

function partnerOf(chat) {
  if (chat.kind !== "direct") return null;
  const o = otherMembers(chat);
  return o.length ? o[0].id : state.session.userId;
}

function chatTitle(chat) {
  if (chat.name) return chat.name;
  if (chat.kind === "notifications") return "Notifications";
  if (chat.kind === "support") return "Support";
  if (chat.kind === "direct") return userName(partnerOf(chat));
  const others = otherMembers(chat);
  const names = others.slice(0, 3).map((u) => userName(u.id));
  const rest = (chat.memberCount || others.length + 1) - 1 - names.length;
  return (names.join(", ") || "Just you") + (rest > 0 ? ` +${rest}` : "");
}

function chatAvatarId(chat) { return chat.kind === "direct" ? partnerOf(chat) : `chat:${chat.id}`; }

function isOnline(userId) { const p = state.presence.get(userId); return p && p.status === "online"; }

// ---------------------------------------------------------------- chats

function byActivity(a, b) {
  const ta = a.updatedAt || "", tb = b.updatedAt || "";
  if (ta !== tb) return ta < tb ? 1 : -1;
  return b.id - a.id;
}

function mergeChat(chat) {
  const old = state.chats.get(chat.id);
  if (old && old.lastMessage && (!chat.lastMessage || chat.lastMessage.id < old.lastMessage.id)) {
    // We already know a newer message than this copy of the chat does.
    chat = { ...chat, lastMessage: old.lastMessage, unread: old.unread, updatedAt: old.updatedAt > chat.updatedAt ? old.updatedAt : chat.updatedAt };
  }
  state.chats.set(chat.id, chat);
}

function mergeChats(chats, users) {
  addUsers(users);
  for (const c of chats || []) mergeChat(c);
  scheduleRender();
}

async function loadChats() {
  try {
    const res = await state.client.request("chats", { count: 100 });
    mergeChats(res.chats, res.users);
    state.chatsLoaded = true;
    requestPresence();
    const last = Number(sessionStorage.getItem(LAST_CHAT_KEY));
    if (!state.openChatId && last && state.chats.has(last) && window.matchMedia("(min-width: 761px)").matches) openChat(last);
  } catch (e) {
    if (!(e instanceof ChinwagError) || e.status >= 500 || e.status === 429) return; // loaded again once connected
    toast(`Could not load chats: ${errorText(e)}`);
  }
}

function ensureChat(chatId) {
  if (state.chats.has(chatId) || state.fetchingChats.has(chatId)) return;
  const p = state.client.chat(chatId).then((res) => {
    addUsers(res.users);
    mergeChat(res.chat);
    scheduleRender();
  }).catch(() => {}).finally(() => state.fetchingChats.delete(chatId));
  state.fetchingChats.set(chatId, p);
}

let presenceAsked = new Set();
function requestPresence(chatIds) {
  const ids = chatIds || [...state.chats.values()].filter((c) => c.kind === "direct").sort(byActivity).slice(0, 15).map((c) => c.id);
  for (const id of ids) {
    state.client.request("opponentStatus", { chatId: id }).then((res) => {
      for (const u of res.users || []) state.presence.set(u.userId, { status: u.status, lastSeen: u.lastSeen });
      presenceAsked.add(id);
      scheduleRender();
    }).catch(() => {});
  }
}

// ---------------------------------------------------------------- messages

function chatMsgs(chatId) {
  let m = state.msgs.get(chatId);
  if (!m) {
    m = { byId: new Map(), pending: new Map(), hasMore: true, loaded: false, loading: false, readSent: 0 };
    state.msgs.set(chatId, m);
  }
  return m;
}

function storeMessage(msg) {
  const m = chatMsgs(msg.chatId);
  const prev = m.byId.get(msg.id);
  if (prev && RANK[prev.status] > RANK[msg.status]) msg = { ...msg, status: prev.status }; // receipts never go back
  m.byId.set(msg.id, msg);
  if (msg.userId === state.session.userId && msg.clientMessageId && m.pending.has(msg.clientMessageId)) {
    m.pending.delete(msg.clientMessageId);
    const url = state.localPreviews.get(msg.clientMessageId);
    if (url) { state.localPreviews.delete(msg.clientMessageId); setTimeout(() => URL.revokeObjectURL(url), 10e3); }
  }
  return !prev;
}

function onMessage(msg) {
  const me = state.session.userId;
  const isNew = storeMessage(msg);
  const chat = state.chats.get(msg.chatId);
  if (!chat) { ensureChat(msg.chatId); scheduleRender(); return; }
  const last = chat.lastMessage;
  if (!last || msg.id > last.id) {
    chat.lastMessage = msg;
    if (msg.insertDate && (!chat.updatedAt || msg.insertDate > chat.updatedAt)) chat.updatedAt = msg.insertDate;
    if (isNew && msg.userId !== me && !msg.deleted && !readingNow(msg.chatId)) chat.unread = (chat.unread || 0) + 1;
  } else if (last.id === msg.id) {
    chat.lastMessage = msg;
  }
  if (msg.userId) stopTyping(msg.chatId, msg.userId);
  // Writing moves the author's own read mark to their message (docs/api.md, messageStatus), and
  // the server pushes no receipt for that: what they answered, they have read.
  if (isNew && msg.userId && msg.userId !== me && !msg.deleted) onReceipt({ status: "read", chatId: msg.chatId, messageId: msg.id, userId: msg.userId });
  if (msg.chatId === state.openChatId && msg.userId !== me) scheduleMarkRead();
  scheduleRender();
}

function readingNow(chatId) { return chatId === state.openChatId && document.visibilityState === "visible"; }

function marksFor(chatId) {
  let m = state.marks.get(chatId);
  if (!m) { m = new Map(); state.marks.set(chatId, m); }
  return m;
}

function onReceipt(r) {
  const me = state.session.userId;
  const chat = state.chats.get(r.chatId);
  if (r.userId === me) {
    // Our own read mark moved (here or on another device).
    if (r.status === "read" && chat) {
      const m = chatMsgs(r.chatId);
      m.readSent = Math.max(m.readSent, r.messageId);
      if (!chat.lastMessage || r.messageId >= chat.lastMessage.id) chat.unread = 0;
      else {
        let n = 0;
        for (const msg of m.byId.values()) if (msg.id > r.messageId && msg.userId !== me && !msg.deleted) n++;
        chat.unread = Math.min(chat.unread || 0, n);
      }
      scheduleRender();
    }
    return;
  }
  const marks = marksFor(r.chatId);
  const mk = marks.get(r.userId) || { delivered: 0, read: 0 };
  mk.delivered = Math.max(mk.delivered, r.messageId);
  if (r.status === "read") mk.read = Math.max(mk.read, r.messageId);
  marks.set(r.userId, mk);

  // A message's status is the least advanced receipt among the members other than its author.
  // Known exactly for chats whose member list we hold whole; otherwise only the direct partner.
  let others = [r.userId];
  if (chat && chat.users && chat.users.length === chat.memberCount) others = otherMembers(chat).map((u) => u.id);
  const level = (msg) => {
    let min = Infinity;
    for (const u of others) {
      const k = marks.get(u);
      const l = k ? (k.read >= msg.id ? 2 : k.delivered >= msg.id ? 1 : 0) : RANK[msg.status];
      min = Math.min(min, Math.max(l, RANK[msg.status]));
    }
    return min;
  };
  const name = ["sent", "delivered", "read"];
  const m = chatMsgs(r.chatId);
  for (const [id, msg] of m.byId) {
    if (msg.userId !== me || id > r.messageId) continue;
    const l = level(msg);
    if (l > RANK[msg.status]) m.byId.set(id, { ...msg, status: name[l] });
  }
  if (chat && chat.lastMessage && chat.lastMessage.userId === me && chat.lastMessage.id <= r.messageId) {
    const l = level(chat.lastMessage);
    if (l > RANK[chat.lastMessage.status]) chat.lastMessage = { ...chat.lastMessage, status: name[l] };
  }
  scheduleRender();
}

function newClientMessageId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return "w-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function addPending(p) {
  chatMsgs(p.chatId).pending.set(p.clientMessageId, p);
  state.atBottom = true;
  scheduleRender();
}

function failPending(chatId, cmid, err) {
  const p = chatMsgs(chatId).pending.get(cmid);
  if (p && p.state === "failed") return; // told already (the outbox event comes before the send's rejection)
  if (p) { p.state = "failed"; p.error = errorText(err); }
  toast(`Not sent: ${errorText(err)}`);
  scheduleRender();
}

function sendText(chatId, text) {
  const clientMessageId = newClientMessageId();
  addPending({ clientMessageId, chatId, text, type: "text", userId: state.session.userId, insertDate: new Date().toISOString(), state: "pending" });
  // The outbox events show the outcome; a rejection also covers a token refused for good.
  state.client.send(chatId, text, { clientMessageId }).catch((err) => failPending(chatId, clientMessageId, err));
}

async function sendFile(chatId, file) {
  const clientMessageId = newClientMessageId();
  const isImage = /^image\//.test(file.type);
  if (isImage) state.localPreviews.set(clientMessageId, URL.createObjectURL(file));
  addPending({ clientMessageId, chatId, text: "", type: isImage ? "image" : "file", userId: state.session.userId,
    insertDate: new Date().toISOString(), state: "pending", localFile: { name: file.name, size: file.size } });
  const attach = $("attach-btn");
  attach.classList.add("busy");
  let uploaded;
  try {
    uploaded = await state.client.upload(file, { name: file.name || "file", contentType: file.type || undefined });
  } catch (err) {
    failPending(chatId, clientMessageId, err);
    return;
  } finally {
    attach.classList.remove("busy");
  }
  const type = /^image\//.test(uploaded.mimeType || "") ? "image" : "file";
  state.client.send(chatId, "", { type, fileId: uploaded.id, clientMessageId }).catch((err) => failPending(chatId, clientMessageId, err));
}

// A message left the outbox, sent or given up: this page's own sends and those restored after a
// reload alike (nobody holds a promise for those).
function onOutboxSent(item, msg) {
  if (msg && msg.id) onMessage(msg);
}

function onOutboxFailed(item, err) {
  failPending(item.chatId, item.clientMessageId, err);
}

// The client keeps unsent messages in its outbox (also across reloads): show them as pending.
// A restored row that is no longer in the outbox has gone (a failed one stays until clicked).
function syncOutbox(pending) {
  state.outbox = pending || [];
  const waiting = new Set(state.outbox.map((p) => p.clientMessageId));
  for (const m of state.msgs.values()) {
    for (const [cmid, p] of m.pending) if (p.queued && p.state === "pending" && !waiting.has(cmid)) m.pending.delete(cmid);
  }
  for (const p of state.outbox) {
    const m = chatMsgs(p.chatId);
    const sent = [...m.byId.values()].some((x) => x.clientMessageId === p.clientMessageId && x.userId === state.session.userId);
    if (!sent && !m.pending.has(p.clientMessageId)) {
      m.pending.set(p.clientMessageId, { clientMessageId: p.clientMessageId, chatId: p.chatId, text: p.text || "", fileId: p.fileId,
        type: p.type || "text", userId: state.session.userId, insertDate: p.insertDate || new Date().toISOString(), state: "pending", queued: true });
    }
  }
  scheduleRender();
}

async function loadHistory(chatId, older) {
  const m = chatMsgs(chatId);
  if (m.loading || (older && !m.hasMore)) return;
  m.loading = true;
  renderHistoryTop();
  const box = $("messages");
  const beforeHeight = box.scrollHeight, beforeTop = box.scrollTop;
  try {
    const opts = { limit: PAGE };
    if (older) {
      let min = Infinity;
      for (const id of m.byId.keys()) min = Math.min(min, id);
      if (min !== Infinity) opts.before = min;
    }
    const res = await state.client.history(chatId, opts);
    addUsers(res.users);
    for (const msg of res.messages) storeMessage(msg);
    if (older || !m.loaded) m.hasMore = !!res.hasMore;
    m.loaded = true;
  } catch (e) {
    m.loading = false;
    renderHistoryTop();
    if (!(e instanceof ChinwagError) || e.status >= 500 || e.status === 429) return; // retried on reconnect or scroll
    toast(`Could not load messages: ${errorText(e)}`);
    return;
  }
  m.loading = false;
  if (chatId !== state.openChatId) return;
  renderMessages();
  if (older) box.scrollTop = beforeTop + (box.scrollHeight - beforeHeight);
  else scrollToBottom();
  scheduleMarkRead();
  // Fill the view: while it does not scroll yet, fetch older pages.
  if (box.scrollHeight <= box.clientHeight + 40 && m.hasMore) loadHistory(chatId, true);
}

// ---------------------------------------------------------------- read receipts

let readTimer = null;
function scheduleMarkRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 200);
}

async function markRead() {
  const chatId = state.openChatId;
  if (!chatId || document.visibilityState !== "visible") return;
  const m = chatMsgs(chatId);
  const me = state.session.userId;
  let newest = 0;
  for (const msg of m.byId.values()) if (msg.userId !== me && msg.id > newest) newest = msg.id;
  if (!newest || newest <= m.readSent) return;
  const before = m.readSent;
  m.readSent = newest;
  try {
    await state.client.markRead(chatId, newest);
    const chat = state.chats.get(chatId);
    if (chat && (!chat.lastMessage || newest >= chat.lastMessage.id)) chat.unread = 0;
    scheduleRender();
  } catch {
    m.readSent = before;
    setTimeout(scheduleMarkRead, 3000);
  }
}

// ---------------------------------------------------------------- typing

function onTyping(t) {
  if (t.userId === state.session.userId) return;
  if (t.status === "typing") {
    let map = state.typing.get(t.chatId);
    if (!map) { map = new Map(); state.typing.set(t.chatId, map); }
    clearTimeout(map.get(t.userId));
    map.set(t.userId, setTimeout(() => stopTyping(t.chatId, t.userId), TYPING_SHOW_MS));
    scheduleRender();
  } else {
    stopTyping(t.chatId, t.userId);
  }
}

function stopTyping(chatId, userId) {
  const map = state.typing.get(chatId);
  if (!map || !map.has(userId)) return;
  clearTimeout(map.get(userId));
  map.delete(userId);
  scheduleRender();
}

function typingText(chatId) {
  const map = state.typing.get(chatId);
  if (!map || map.size === 0) return "";
  const names = [...map.keys()].map(userName);
  if (names.length === 1) return `${names[0]} is typing`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing`;
  return `${names.length} people are typing`;
}

let typingSentAt = 0, typingChat = null, typingIdle = null;
function composerTyped() {
  const chatId = state.openChatId;
  if (!chatId) return;
  const text = $("composer-input").value;
  clearTimeout(typingIdle);
  if (!text.trim()) { stopOwnTyping(); return; }
  const now = Date.now();
  if (typingChat !== chatId || now - typingSentAt > TYPING_SEND_EVERY_MS) {
    typingSentAt = now;
    typingChat = chatId;
    state.client.typing(chatId, "typing").catch(() => {});
  }
  typingIdle = setTimeout(stopOwnTyping, TYPING_IDLE_MS);
}

function stopOwnTyping() {
  clearTimeout(typingIdle);
  if (typingChat != null) {
    state.client.typing(typingChat, "stopped").catch(() => {});
    typingChat = null;
    typingSentAt = 0;
  }
}

// ---------------------------------------------------------------- rendering

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; renderAll(); }, 0);
}

function renderAll() {
  renderConn();
  renderChatList();
  if (state.openChatId) {
    renderHeader();
    renderMessages();
    renderTyping();
  }
  const unread = [...state.chats.values()].reduce((n, c) => n + (c.unread || 0), 0);
  document.title = unread ? `(${unread}) Chinwag` : "Chinwag";
}

function renderConn() {
  const t = state.transport;
  const title = {
    sse: "Connected: live events over Server-Sent Events",
    poll: "Connected by long-polling (a proxy buffers the live stream)",
    offline: "Offline: messages wait in the outbox and go out when the connection is back",
    connecting: "Connecting",
  }[t] || t;
  for (const pill of [$("conn-state"), $("chat-conn")]) {
    pill.dataset.state = t;
    pill.textContent = t;
    pill.title = title;
  }
  const q = $("outbox-count");
  const n = state.outbox.length;
  q.hidden = n === 0;
  q.textContent = n ? `${n} queued` : "";
}

function ticks(status) {
  const name = status === "pending" ? "clock" : status === "failed" ? "alert" : status === "sent" ? "check" : "check2";
  const label = { pending: "Sending", failed: "Not sent", sent: "Sent", delivered: "Delivered", read: "Read" }[status];
  const s = h("span", { class: "ticks", "data-testid": "ticks", "data-status": status, title: label, "aria-label": label });
  s.append(icon(name));
  return s;
}

function previewOf(msg) {
  if (msg.deleted) return "Message deleted";
  if (msg.file) {
    const kind = /^image\//.test(msg.file.mimeType || "") ? "Photo" : msg.file.title || "File";
    return msg.text ? `${kind}: ${msg.text}` : kind;
  }
  return msg.text || "";
}

function renderChatList() {
  const list = $("chat-list");
  const chats = [...state.chats.values()].sort(byActivity);
  $("chat-list-empty").hidden = !(state.chatsLoaded && chats.length === 0);
  const me = state.session.userId;
  const frag = document.createDocumentFragment();
  for (const chat of chats) {
    const title = chatTitle(chat);
    const partner = partnerOf(chat);
    const last = chat.lastMessage;
    const typing = typingText(chat.id);
    const preview = h("span", { class: "chat-item-preview", "data-testid": "chat-preview" });
    if (typing) preview.append(h("span", { class: "typing-word", text: chat.kind === "direct" ? "typing…" : `${typing}…` }));
    else if (last) {
      if (last.userId === me) preview.append(ticks(last.status));
      else if (chat.kind !== "direct" && last.userId) preview.append(`${userName(last.userId)}: `);
      preview.append(h("span", { class: "preview-text", text: previewOf(last) }));
    } else preview.append(h("span", { class: "preview-text", text: chat.kind === "direct" ? "Say hello" : `${chat.memberCount || 0} members` }));
    const when = last ? dateOf(last.insertDate) : dateOf(chat.updatedAt);
    const unread = chat.unread || 0;
    const item = h("li", {
      class: `chat-item${chat.id === state.openChatId ? " active" : ""}${unread ? " has-unread" : ""}`,
      "data-testid": "chat-item", "data-chat-id": chat.id, "data-title": title, "data-unread": unread,
      tabindex: 0, role: "button", "aria-label": `${title}${unread ? `, ${unread} unread` : ""}`,
      onclick: () => openChat(chat.id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openChat(chat.id); } },
    },
    avatar(chatAvatarId(chat), title, partner && isOnline(partner) ? "online" : ""),
    h("div", { class: "chat-item-body" },
      h("div", { class: "chat-item-top" },
        h("span", { class: "chat-item-name", "data-testid": "chat-name", text: title }),
        h("time", { class: "chat-item-time", datetime: when.toISOString(), text: listTime(when) })),
      h("div", { class: "chat-item-bottom" },
        preview,
        unread ? h("span", { class: "badge", "data-testid": "unread-badge", text: unread > 99 ? "99+" : String(unread) }) : null)));
    frag.append(item);
  }
  list.replaceChildren(frag);
}

function renderHeader() {
  const chat = state.chats.get(state.openChatId);
  if (!chat) return;
  const title = chatTitle(chat);
  $("chat-title").textContent = title;
  const sub = $("chat-presence");
  const partner = partnerOf(chat);
  setAvatar($("chat-avatar"), chatAvatarId(chat), title, partner && isOnline(partner));
  sub.classList.remove("online");
  if (chat.kind === "direct") {
    const p = state.presence.get(partner);
    if (!p) sub.textContent = "";
    else if (p.status === "online") { sub.textContent = "online"; sub.classList.add("online"); }
    else sub.textContent = lastSeenText(p.lastSeen);
    sub.dataset.status = p ? p.status : "unknown";
  } else {
    const members = chat.memberCount || (chat.users || []).length;
    const online = otherMembers(chat).filter((u) => isOnline(u.id)).length;
    sub.textContent = `${members} member${members === 1 ? "" : "s"}${online ? `, ${online} online` : ""}`;
    sub.dataset.status = "group";
  }
}

function renderTyping() {
  const t = typingText(state.openChatId);
  const line = $("typing");
  line.replaceChildren();
  line.dataset.active = t ? "true" : "false";
  if (t) line.append(h("span", { class: "typing-bubble", "aria-hidden": "true" }, h("i"), h("i"), h("i")), t);
}

function renderHistoryTop() {
  const m = state.openChatId ? chatMsgs(state.openChatId) : null;
  const top = $("history-top");
  if (!m) { top.textContent = ""; return; }
  top.textContent = m.loading ? "Loading…" : m.loaded && !m.hasMore ? (m.byId.size ? "This is the start of the chat" : "No messages yet — say hello") : "";
}

function fileUrl(path) {
  if (!path) return null;
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.token)}`;
}

function formatSize(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function messageNode(msg, cont, contNext, group) {
  const me = state.session.userId;
  const mine = msg.userId === me;
  const pending = !msg.id;
  const status = pending ? (msg.state === "failed" ? "failed" : "pending") : mine ? msg.status : null;
  const when = dateOf(msg.insertDate);
  const classes = ["msg"];
  if (mine) classes.push("mine");
  if (cont) classes.push("cont");
  if (contNext) classes.push("cont-next");
  if (pending) classes.push(msg.state === "failed" ? "failed" : "pending");
  if (msg.deleted) classes.push("deleted");

  const bubble = h("div", { class: "bubble" });
  if (group && !mine && !cont && msg.userId) bubble.append(h("div", { class: "author", hue: hue(msg.userId), text: userName(msg.userId) }));

  const file = msg.file;
  const localPreview = pending ? state.localPreviews.get(msg.clientMessageId) : null;
  if (file && /^image\//.test(file.mimeType || "")) {
    bubble.classList.add("has-image");
    const img = h("img", {
      src: fileUrl(file.thumbnail || file.url), alt: file.title || "Photo", "data-testid": "message-image", decoding: "async",
      onload: () => { if (state.atBottom) scrollToBottom(); },
    });
    bubble.append(h("a", { class: "image-link", href: fileUrl(file.url), target: "_blank", rel: "noopener", title: file.title || "Photo" }, img));
  } else if (file) {
    bubble.append(h("a", { class: "file-chip", href: fileUrl(file.url), target: "_blank", rel: "noopener", "data-testid": "message-file" },
      icon("file"),
      h("span", {}, h("div", { class: "file-name", text: file.title || "File" }), h("div", { class: "file-size", text: formatSize(file.size) }))));
  } else if (localPreview) {
    bubble.classList.add("has-image");
    bubble.append(h("span", { class: "image-link" }, h("img", { src: localPreview, alt: "Sending photo", "data-testid": "pending-image" })));
  } else if (pending && msg.localFile) {
    bubble.append(h("span", { class: "file-chip" }, icon("file"),
      h("span", {}, h("div", { class: "file-name", text: msg.localFile.name || "File" }), h("div", { class: "file-size", text: formatSize(msg.localFile.size) }))));
  } else if (pending && (msg.fileId || msg.type === "image" || msg.type === "file")) {
    // Restored from the outbox after a reload: the file is uploaded, but its name and preview
    // were this page's own.
    bubble.append(h("span", { class: "file-chip", "data-testid": "pending-file" }, icon("file"),
      h("span", {}, h("div", { class: "file-name", text: msg.type === "image" ? "Photo" : "File" }))));
  }
  const text = msg.deleted ? "This message was deleted" : msg.text || "";
  if (text) {
    if (bubble.classList.contains("has-image")) bubble.classList.add("with-text");
    bubble.append(h("span", { class: "text", "data-testid": "message-text", text }));
  } else if (!bubble.classList.contains("has-image")) {
    bubble.append(h("span", { class: "text", "data-testid": "message-text", text: "" }));
  }
  const meta = h("span", { class: "meta" },
    msg.editDate && !msg.deleted ? h("span", { class: "edited", text: "edited" }) : null,
    h("time", { datetime: when.toISOString(), title: when.toLocaleString(), text: clock(when) }),
    status ? ticks(status) : null);
  bubble.append(meta);

  const row = h("div", {
    class: classes.join(" "), "data-testid": pending ? "pending-message" : "message",
    "data-id": msg.id || null, "data-client-id": msg.clientMessageId || null,
    "data-user": msg.userId || "system", "data-mine": mine ? "true" : "false",
  });
  if (group && !mine) row.append(contNext ? h("div", { class: "avatar-gap" }) : avatar(msg.userId || "system", userName(msg.userId || "system"), "small"));
  row.append(bubble);
  if (pending && msg.state === "failed") {
    row.title = msg.error || "Not sent";
    row.addEventListener("click", () => { chatMsgs(msg.chatId).pending.delete(msg.clientMessageId); scheduleRender(); });
  }
  return row;
}

function renderMessages() {
  const chatId = state.openChatId;
  const chat = state.chats.get(chatId);
  const m = chatMsgs(chatId);
  const box = $("messages");
  const stick = state.atBottom;
  const group = chat ? chat.kind !== "direct" : false;
  const all = [...m.byId.values()].sort((a, b) => a.id - b.id).concat([...m.pending.values()]);
  const items = [];
  let prevDay = null, prev = null;
  for (let i = 0; i < all.length; i++) {
    const msg = all[i];
    const d = dateOf(msg.insertDate);
    const dk = dayKey(d);
    if (dk !== prevDay) { items.push({ key: `d:${dk}`, day: d }); prevDay = dk; prev = null; }
    const run = (a, b) => a && b && a.userId === b.userId && !a.deleted === !b.deleted && Math.abs(dateOf(b.insertDate) - dateOf(a.insertDate)) < RUN_GAP_MS && dayKey(dateOf(a.insertDate)) === dayKey(dateOf(b.insertDate));
    items.push({ key: msg.id ? `m:${msg.id}` : `p:${msg.clientMessageId}`, msg, cont: run(prev, msg), contNext: run(msg, all[i + 1]) });
    prev = msg;
  }

  const container = $("message-items");
  const keep = new Map();
  let i = 0;
  for (const it of items) {
    let entry = state.nodes.get(it.key);
    let sig;
    if (it.day) sig = dayLabel(it.day);
    else {
      const msg = it.msg;
      sig = JSON.stringify([msg.text, msg.deleted, msg.editDate, msg.file && msg.file.id, it.cont, it.contNext, group, msg.state, msg.status, userName(msg.userId)]);
    }
    if (!entry || entry.sig !== sig) {
      const node = it.day ? h("div", { class: "day", "data-testid": "day", text: sig }) : messageNode(it.msg, it.cont, it.contNext, group);
      if (entry && entry.node.isConnected && !it.day && entry.sigNoStatus === sigNoStatus(sig) && entry.node.querySelector(".ticks")) {
        // Only the receipt changed: swap the ticks, keep the node (and a loaded image).
        entry.node.querySelector(".ticks").replaceWith(ticks(it.msg.status));
        entry.sig = sig;
      } else {
        if (entry && entry.node.isConnected) entry.node.replaceWith(node);
        entry = { node, sig, sigNoStatus: it.day ? null : sigNoStatus(sig) };
      }
    }
    keep.set(it.key, entry);
    const at = container.children[i];
    if (at !== entry.node) container.insertBefore(entry.node, at || null);
    i++;
  }
  while (container.children.length > items.length) container.lastElementChild.remove();
  state.nodes = keep;
  renderHistoryTop();
  if (stick) scrollToBottom();
}

function sigNoStatus(sig) {
  const a = JSON.parse(sig);
  a.splice(8, 1);
  return JSON.stringify(a);
}

function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
  state.atBottom = true;
}

// ---------------------------------------------------------------- opening a chat

function openChat(chatId) {
  const chat = state.chats.get(chatId);
  if (!chat) return;
  if (state.openChatId !== chatId) {
    stopOwnTyping();
    state.openChatId = chatId;
    state.nodes = new Map();
    $("message-items").replaceChildren();
    $("composer-input").value = "";
    autoGrow();
  }
  sessionStorage.setItem(LAST_CHAT_KEY, String(chatId));
  $("no-chat").hidden = true;
  $("chat-view").hidden = false;
  $("app").classList.add("show-chat");
  $("chat-view").dataset.chatId = String(chatId);
  state.atBottom = true;
  renderAll();
  const m = chatMsgs(chatId);
  if (!m.loaded) loadHistory(chatId, false);
  else { scrollToBottom(); scheduleMarkRead(); }
  if (chat.kind === "direct" || (chat.memberCount || 0) <= 100) requestPresence([chatId]);
  if (window.matchMedia("(min-width: 761px)").matches) $("composer-input").focus();
}

function closeChat() {
  stopOwnTyping();
  state.openChatId = null;
  state.nodes = new Map();
  sessionStorage.removeItem(LAST_CHAT_KEY);
  $("message-items").replaceChildren();
  $("chat-view").hidden = true;
  $("no-chat").hidden = false;
  $("app").classList.remove("show-chat");
  renderAll();
}

// ---------------------------------------------------------------- events from the server

function onChatDeleted({ chatId }) {
  state.chats.delete(chatId);
  state.msgs.delete(chatId);
  state.marks.delete(chatId);
  if (state.openChatId === chatId) { closeChat(); toast("That chat was deleted, or you were removed from it."); }
  scheduleRender();
}

function onChatCleared({ chatId, upTo }) {
  const m = chatMsgs(chatId);
  for (const id of [...m.byId.keys()]) if (id <= upTo) m.byId.delete(id);
  const chat = state.chats.get(chatId);
  if (chat && chat.lastMessage && chat.lastMessage.id <= upTo) { chat.lastMessage = null; chat.unread = 0; }
  scheduleRender();
}

function onPresence(data) {
  for (const u of data.users || []) state.presence.set(u.userId, { status: u.status, lastSeen: u.lastSeen });
  scheduleRender();
}

function onReset({ chats, users }) {
  // The cursor could not be resumed: what we held may be stale. Start over from the fresh list.
  state.chats.clear();
  state.msgs.clear();
  state.marks.clear();
  state.nodes = new Map();
  $("message-items").replaceChildren();
  if (chats) mergeChats(chats, users);
  else { state.chatsLoaded = false; loadChats(); }
  syncOutbox(state.client.outbox);
  if (state.openChatId) {
    if (state.chats.has(state.openChatId)) loadHistory(state.openChatId, false);
    else closeChat();
  }
}

function onTransport(t) {
  const was = state.transport;
  state.transport = t;
  scheduleRender();
  if ((t === "sse" || t === "poll") && (was === "offline" || was === "connecting")) {
    if (!state.chatsLoaded) loadChats();
    const open = state.openChatId;
    if (open && !chatMsgs(open).loaded) loadHistory(open, false);
    if (open) scheduleMarkRead();
  }
}

function onClientError(err) {
  if (state.session.dev && err instanceof ChinwagError && err.status === 404) {
    toast("This server no longer offers developer sign-in: sign out, and sign in with a token.");
    return;
  }
  if (err instanceof ChinwagError && err.status === 401) {
    if (state.session.dev) return; // getToken mints a new one
    toast("The server no longer accepts your token. Sign out and sign in again.");
  }
}

// ---------------------------------------------------------------- start

function startApp(session) {
  state.session = session;
  state.token = session.token;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = session.userId;
  setAvatar($("me-avatar"), session.userId, session.userId, false);

  // The client keeps its cursor and outbox per user (and its transport choice per origin).
  const options = { baseUrl: "", storage: localStorage, transport: "auto", userId: session.userId };
  if (session.dev) {
    // The client asks once at start (the saved token does, while fresh) and again after a 401:
    // then only a new token helps.
    let first = true;
    options.getToken = async () => {
      if (first && tokenFresh(state.token)) { first = false; return state.token; }
      first = false;
      state.token = await mintDevToken(session.userId);
      saveSession({ ...session, token: state.token });
      return state.token;
    };
  } else {
    options.token = session.token;
  }
  const client = new Chinwag(options);
  state.client = client;
  client.on("message", onMessage);
  client.on("messageStatus", onReceipt);
  client.on("chat", (chat) => { mergeChat(chat); scheduleRender(); });
  client.on("chats", (data) => mergeChats(data.chats, data.users));
  client.on("chatDeleted", onChatDeleted);
  client.on("chatCleared", onChatCleared);
  client.on("typing", onTyping);
  client.on("opponentStatus", onPresence);
  client.on("reset", onReset);
  client.on("outbox", syncOutbox);
  client.on("outboxSent", onOutboxSent);
  client.on("outboxFailed", onOutboxFailed);
  client.on("transport", onTransport);
  client.on("error", onClientError);
  client.start();
  syncOutbox(client.outbox);
  loadChats();
  renderAll();
}

// ---------------------------------------------------------------- wiring

function autoGrow() {
  const ta = $("composer-input");
  ta.style.height = "auto";
  ta.style.height = `${Math.min(ta.scrollHeight + 2, 160)}px`;
}

function submitComposer() {
  const ta = $("composer-input");
  const text = ta.value.trim();
  const chatId = state.openChatId;
  if (!text || !chatId) return;
  ta.value = "";
  autoGrow();
  stopOwnTyping();
  sendText(chatId, text);
}

function openNewChat() {
  $("new-chat-error").hidden = true;
  $("new-chat-form").reset();
  $("new-chat-dialog").showModal();
  $("new-chat-users").focus();
}

async function createChat(e) {
  e.preventDefault();
  const me = state.session.userId;
  const ids = [...new Set($("new-chat-users").value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))].filter((id) => id !== me);
  const name = $("new-chat-name").value.trim();
  const err = $("new-chat-error");
  const bad = ids.find((id) => !USER_ID.test(id));
  if (ids.length === 0 || bad) {
    err.hidden = false;
    err.textContent = bad ? `“${bad}” is not a user id (1–64 letters, digits or _ . @ : -).` : "Name at least one other person.";
    return;
  }
  const data = { userIds: ids };
  if (ids.length > 1 && name) data.name = name;
  try {
    const res = await state.client.createChat(data);
    addUsers(res.users);
    mergeChat(res.chat);
    $("new-chat-dialog").close();
    openChat(res.chat.id);
  } catch (ex) {
    err.hidden = false;
    err.textContent = errorText(ex);
  }
}

function wire() {
  document.querySelectorAll(".dev-user").forEach((b) => b.addEventListener("click", () => signInDev(b.dataset.user)));
  $("dev-form").addEventListener("submit", (e) => { e.preventDefault(); signInDev($("dev-user-input").value); });
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); signInToken($("token-input").value); });
  $("signout-btn").addEventListener("click", signOut);
  $("new-chat-btn").addEventListener("click", openNewChat);
  $("new-chat-empty").addEventListener("click", openNewChat);
  $("new-chat-cancel").addEventListener("click", () => $("new-chat-dialog").close());
  $("new-chat-form").addEventListener("submit", createChat);
  $("back-btn").addEventListener("click", closeChat);

  const ta = $("composer-input");
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitComposer(); }
  });
  ta.addEventListener("input", () => { autoGrow(); composerTyped(); });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); submitComposer(); });
  $("attach-btn").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    if (state.openChatId) for (const f of files) sendFile(state.openChatId, f);
  });

  const box = $("messages");
  box.addEventListener("scroll", () => {
    state.atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    if (box.scrollTop < 150 && state.openChatId) loadHistory(state.openChatId, true);
  }, { passive: true });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleMarkRead();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.openChatId && !$("new-chat-dialog").open) closeChat();
  });
  // The list's times ("Yesterday", "last seen …") age: refresh them now and then.
  setInterval(scheduleRender, 60e3);
}

wire();
const saved = loadSession();
if (saved && (saved.dev || tokenFresh(saved.token))) startApp(saved);
else showSignin(saved ? "Your token has expired: sign in again." : "");
