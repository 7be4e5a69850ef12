// Starts the real server binary on loopback with a temporary data directory, in dev mode.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const binary = resolve(repoRoot, process.env.CHINWAG_BIN || "target/release/chinwag");

const running = new Set();
process.on("exit", () => { for (const p of running) { try { p.kill("SIGKILL"); } catch { /* gone */ } } });

export function tempDataDir() {
  return mkdtempSync(join(tmpdir(), "chinwag-browser-"));
}

/**
 * Starts `chinwag serve --dev` and resolves once its log names the address it listens on.
 * `port` 0 picks a free one. Returns {url, port, dataDir, stop(signal), kill(), log()}.
 */
export async function startServer({ dataDir = tempDataDir(), port = 0, timeoutMs = 15000 } = {}) {
  if (!existsSync(binary)) throw new Error(`no server binary at ${binary}: build it (cargo build --release) or set CHINWAG_BIN`);
  const proc = spawn(binary, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir, "--dev"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" },
  });
  running.add(proc);
  let log = "";
  const exited = new Promise((r) => proc.once("exit", (code, signal) => { running.delete(proc); r({ code, signal }); }));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => { proc.kill("SIGKILL"); reject(new Error(`server did not say where it listens within ${timeoutMs} ms; log:\n${log}`)); }, timeoutMs);
    const onData = (chunk) => {
      log += chunk;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", onData);
    exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`server exited (${code ?? signal}) before listening; log:\n${log}`)); });
  });
  const stop = async (signal = "SIGTERM", waitMs = 15000) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), waitMs);
    await exited;
    clearTimeout(t);
  };
  return { url, port: Number(new URL(url).port), dataDir, proc, stop, kill: () => stop("SIGKILL"), log: () => log };
}

export function removeDir(dir) {
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
}
