import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { isAlive } from './lock.js';

export interface RunningServer {
  pid: number;
  port: number;
}

/**
 * The server that owns `dataDir`, if it is up and accepting connections. postmaster.pid alone
 * can lie after a crash or reboot (its pid reused by another program), so the port it names
 * must also answer.
 */
export async function runningServer(dataDir: string): Promise<RunningServer | null> {
  const found = await readPidFile(dataDir);
  if (!found || !found.ready || !isAlive(found.pid)) return null;
  return (await portAnswers(found.port)) ? { pid: found.pid, port: found.port } : null;
}

interface PidFile {
  pid: number;
  port: number;
  ready: boolean;
}

/** postmaster.pid: line 1 pid, line 4 port, line 8 status ("ready" once it accepts). */
export function parsePidFile(text: string): PidFile | null {
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || !Number.isInteger(port)) return null;
  return { pid, port, ready: (lines[7] ?? '').trim() === 'ready' };
}

async function readPidFile(dataDir: string): Promise<PidFile | null> {
  try {
    return parsePidFile(await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function portAnswers(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Whether nothing listens on 127.0.0.1:port, so the server may take it. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** A port the kernel considers free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
