import { usageError } from '../errors.js';
import { loadScenarioFile, startSandbox } from '../sandbox/server.js';
import { makeContext, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

export interface SandboxFlags extends GlobalOptions {
  port: string; latency: string; scenario?: string; token?: string; log?: string;
}

export function parseLatency(text: string): number | [number, number] {
  const m = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*(ms)?\s*$/.exec(text);
  if (!m) {
    throw usageError('bad_latency', `--latency: "${text}" must be milliseconds, e.g. 50 or 80-250`);
  }
  const min = Number(m[1]);
  return m[2] === undefined ? min : [min, Number(m[2])];
}

/** Runs until SIGINT/SIGTERM, then flushes its log and exits 0. */
export async function sandboxCommand(f: SandboxFlags): Promise<number> {
  const ctx = makeContext(f);
  const port = Number(f.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw usageError('bad_port', `--port: "${f.port}" must be a port number from 0 to 65535`);
  }
  const sandbox = await startSandbox({
    port,
    latencyMs: parseLatency(f.latency),
    accessToken: f.token === 'any' ? null : f.token ?? 'sandbox-token',
    keepInMemory: false,
    ...(f.scenario ? { scenario: await loadScenarioFile(f.scenario) } : {}),
    ...(f.log ? { logFile: f.log } : {}),
  });
  if (ctx.json) writeStdout(JSON.stringify({ url: sandbox.url, port: sandbox.port }) + '\n');
  else writeStdout(`sandbox listening on ${sandbox.url}\n`);
  ctx.log.info('sandbox', `set WHATSAPP_API_URL=${sandbox.url} and ` +
    `WHATSAPP_ACCESS_TOKEN=${f.token && f.token !== 'any' ? '<your --token>' : 'sandbox-token'}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await sandbox.close();
  ctx.log.info('sandbox', `stopped after ${sandbox.requests()} requests`);
  return 0;
}
