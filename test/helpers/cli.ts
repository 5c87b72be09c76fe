import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/wacamp.js', import.meta.url));

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or 128 + signal number when killed by a signal). */
  exited: Promise<number>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export function tempHome(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'wacamp-home-'));
}

/**
 * Spawns the real CLI (built code, as a user runs it) off a terminal, so it logs plain lines.
 * `env` is added to a minimal environment: nothing of the caller's WhatsApp or database settings
 * leaks in.
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): CliRun {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (b: Buffer) => { out += b; waiters.forEach((w) => w()); });
  child.stderr!.on('data', (b: Buffer) => { err += b; waiters.forEach((w) => w()); });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
    });
  });
  return {
    child, exited, stdout: () => out, stderr: () => err,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out) || pattern.test(err)) {
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => reject(new Error(
          `timed out waiting for ${pattern}; stderr:\n${err}`)), timeoutMs);
        waiters.push(check);
        check();
      });
    },
  };
}

/** Runs the CLI to completion. */
export async function cli(
  args: string[], env: Record<string, string | undefined> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = runCli(args, env);
  const code = await r.exited;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}
