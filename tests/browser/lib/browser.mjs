// The browser side of the tests: Chromium through playwright-core, one context per user, and
// the demo app's screens driven by their data-testid attributes.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), "..", "screenshots");

export const tid = (id) => `[data-testid="${id}"]`;

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** A fresh context (its own storage) and page for one user, at `viewport`, with its console kept. */
export async function openUser(browser, name, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, locale: "en-GB", timezoneId: "UTC" });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  return { name, context, page, errors, viewport };
}

/** Loads the app at `url` and signs in with the dev user picker; waits for a live connection. */
export async function signIn(user, url, { transports = ["sse"], timeout = 10000, shot } = {}) {
  const { page, name } = user;
  await page.goto(url);
  await page.locator(tid("dev-signin")).waitFor({ state: "visible", timeout });
  if (shot) await shoot(user, shot);
  const chip = page.locator(tid(`dev-user-${name}`));
  if (await chip.count()) await chip.click();
  else {
    await page.fill(tid("dev-user-input"), name);
    await page.click(tid("dev-user-go"));
  }
  await page.locator(tid("app")).waitFor({ state: "visible", timeout });
  if (transports) await waitConn(user, transports, timeout);
}

export async function connState(user) {
  return user.page.getAttribute(tid("conn-state"), "data-state");
}

/** Waits until the connection pill shows one of `states`; fails with what it showed instead. */
export async function waitConn(user, states, timeout = 10000) {
  const list = Array.isArray(states) ? states : [states];
  try {
    await user.page.waitForFunction(
      ([sel, want]) => want.includes(document.querySelector(sel)?.dataset.state),
      [tid("conn-state"), list], { timeout, polling: 100 });
  } catch {
    throw new Error(`${user.name}: connection pill did not show ${list.join("/")} within ${timeout} ms (shows ${await connState(user)})`);
  }
}

/** Bounded wait for `fn(arg)` in the page to be truthy, with a message saying what was awaited. */
export async function waitUntil(user, what, fn, arg, timeout = 10000) {
  try {
    await user.page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${user.name}: ${what} did not happen within ${timeout} ms${e.message.includes("Timeout") ? "" : `: ${e.message}`}`);
  }
}

/** The texts of the stored (not pending) messages in the open chat, in page order. */
export async function messageTexts(user) {
  return user.page.$$eval(`${tid("message")} ${tid("message-text")}`, (els) => els.map((e) => e.textContent));
}

/** Waits for the open chat to show exactly `texts` as its messages, in that order. */
export async function waitMessages(user, texts, timeout = 15000) {
  try {
    await user.page.waitForFunction(([sel, want]) => {
      const got = [...document.querySelectorAll(sel)].map((e) => e.textContent);
      return got.length === want.length && got.every((t, i) => t === want[i]);
    }, [`${tid("message")} ${tid("message-text")}`, texts], { timeout, polling: 100 });
  } catch {
    const got = await messageTexts(user);
    throw new Error(`${user.name}: expected the messages\n  ${JSON.stringify(texts)}\nwithin ${timeout} ms, the page shows\n  ${JSON.stringify(got)}`);
  }
}

export async function openChatWith(user, title, timeout = 10000) {
  const item = user.page.locator(`${tid("chat-item")}[data-title="${title}"]`);
  await item.waitFor({ state: "visible", timeout });
  await item.click();
  await user.page.locator(tid("chat-view")).waitFor({ state: "visible", timeout });
  await waitUntil(user, `the chat with ${title} opening`, (t) => document.querySelector('[data-testid="chat-title"]')?.textContent === t, title, timeout);
}

export async function newDirectChat(user, other) {
  const { page } = user;
  await page.click(tid("new-chat"));
  await page.fill(tid("new-chat-users"), other);
  await page.click(tid("new-chat-create"));
  await waitUntil(user, `the chat with ${other} opening`, (t) => document.querySelector('[data-testid="chat-title"]')?.textContent === t, other);
}

export async function send(user, text) {
  await user.page.fill(tid("composer-input"), text);
  await user.page.press(tid("composer-input"), "Enter");
}

/** Screenshots the page at both window sizes: `<step>-<user>-desktop.png` and `-phone.png`. */
export async function shoot(user, step) {
  mkdirSync(SHOTS, { recursive: true });
  const { page } = user;
  const start = page.viewportSize();
  for (const [label, size] of [["desktop", DESKTOP], ["phone", PHONE]]) {
    await page.setViewportSize(size);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: join(SHOTS, `${step}-${user.name}-${label}.png`) });
  }
  await page.setViewportSize(start);
}

export async function closeAll(browser, users) {
  for (const u of users) { try { await u.context.close(); } catch { /* closed */ } }
  if (browser) { try { await browser.close(); } catch { /* closed */ } }
}
