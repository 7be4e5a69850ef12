// Backoff: doubling delays with jitter, never below the floor the server asked for.
import assert from "node:assert/strict";

import { Backoff } from "../../web/chinwag.js";
import { test } from "./fakes.mjs";

test("delays double from the base up to the cap, then stay there", () => {
  const b = new Backoff({ base: 1000, max: 30000, jitter: 0.5, random: () => 0 });
  const got = Array.from({ length: 8 }, () => b.next());
  assert.deepEqual(got, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("jitter adds up to half the delay, from the random source", () => {
  const top = new Backoff({ base: 1000, random: () => 0.999999 });
  assert.equal(top.next(), 1500);
  assert.equal(top.next(), 3000);
  const mid = new Backoff({ base: 1000, random: () => 0.5 });
  assert.equal(mid.next(), 1250);
  // Real randomness stays inside [delay, 1.5 × delay] and is not always the same.
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    const r = new Backoff({ base: 1000 });
    const d = r.next();
    assert.ok(d >= 1000 && d <= 1500, `${d} within the jitter`);
    seen.add(d);
  }
  assert.ok(seen.size > 1, "jitter varies");
});

test("a floor (the stream's retry:, a Retry-After) is the least delay; the backoff grows past it", () => {
  const b = new Backoff({ base: 1000, max: 30000, random: () => 0 });
  assert.deepEqual([b.next(3000), b.next(3000), b.next(3000), b.next(3000)], [3000, 3000, 4000, 8000]);
  // A floor above the cap wins over the cap.
  const big = new Backoff({ base: 1000, max: 30000, random: () => 0 });
  assert.equal(big.next(60000), 60000);
  assert.equal(big.next(), 2000, "the floor is for that delay only");
  // With jitter, never below the floor either.
  const j = new Backoff({ base: 1000, random: () => 0.5 });
  assert.equal(j.next(5000), 6250);
});

test("reset starts again from the floor after a connection worked", () => {
  const b = new Backoff({ base: 1000, random: () => 0 });
  b.next();
  b.next();
  b.next();
  b.reset();
  assert.equal(b.next(), 1000);
  assert.equal(b.next(), 2000);
});
