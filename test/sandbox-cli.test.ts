import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SandboxMessage } from '../src/sandbox/server.js';
import { e164For, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, runCli, tempHome, type CliRun } from './helpers/cli.js';
import type { TestDatabase } from './helpers/db.js';
import { Harness } from './helpers/harness.js';

/**
 * `wacamp sandbox` as its own process, the way an operator or CI runs it: a chosen port,
 * `--latency`, a `--scenario` file and a `--log` file, stopped with SIGTERM. A real `wacamp send`
 * is pointed at it, and what it accepted is read back from the log file.
 */

// Resources each test made, undone after it (test/helpers/harness.ts).
const h = new Harness();

afterEach(() => h.cleanup());

async function scratch(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-sbcli-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function database(): Promise<TestDatabase> {
  return h.database();
}

async function listening(port = 0): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = await listening();
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `wacamp sandbox …` and waits until it says where it listens. */
async function sandboxProcess(args: string[]): Promise<{ run: CliRun; url: string }> {
  const run = runCli(['sandbox', ...args], { WACAMP_HOME: tempHome() });
  h.defer(async () => {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
    await run.exited;
  });
  await run.waitFor(/sandbox listening on (http:\/\/\S+)/);
  const url = /sandbox listening on (http:\/\/\S+)/.exec(run.stdout())![1]!;
  return { run, url };
}

function sendBody(to: string) {
  return JSON.stringify({ messaging_product: 'whatsapp', to, type: 'template',
    template: { name: 'hello_world', language: { code: 'en_US' } } });
}

async function post(url: string, to: string, token = 'sandbox-token') {
  const began = performance.now();
  const res = await fetch(`${url}/v23.0/100200300/messages`, { method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: sendBody(to) });
  const body = await res.json() as { error?: { code: number; error_data: { details: string } } };
  return { status: res.status, body, ms: performance.now() - began };
}

describe('wacamp sandbox as a separate process', () => {
  it('listens on --port, answers after --latency, applies --scenario, logs to --log, and ' +
    'serves a real send; SIGTERM flushes the log and exits 0', async () => {
    const dir = await scratch();
    const port = await freePort();
    const scenarioFile = path.join(dir, 'scenario.json');
    const logFile = path.join(dir, 'accepted.ndjson');
    await writeFile(scenarioFile, JSON.stringify({ phoneCodes: { [e164For(3)]: 131026 },
      heldShare: 0 }));
    const { run, url } = await sandboxProcess(['--port', String(port), '--latency', '60',
      '--scenario', scenarioFile, '--log', logFile]);
    expect(url).toBe(`http://127.0.0.1:${port}`);
    // It tells the operator how to point wacamp at it.
    await run.waitFor(/set WHATSAPP_API_URL=http:\/\/127\.0\.0\.1/);

    // --latency: every answer waits at least that long.
    const answer = await post(url, '15550001111');
    expect(answer.status).toBe(200);
    expect(answer.ms).toBeGreaterThanOrEqual(55);
    // --scenario: the chosen phone gets its code, as Meta would send it.
    const refused = await post(url, e164For(3));
    expect(refused.status).toBe(400);
    expect(refused.body.error?.code).toBe(131026);
    // The token check is on by default.
    expect((await post(url, '15550001111', 'wrong')).body.error?.code).toBe(190);

    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 12 });
    const send = await cli(['send', campaignId, '--json'], { DATABASE_URL: t.url,
      WHATSAPP_API_URL: url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token', WACAMP_HOME: tempHome() });
    expect(send.code, send.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 11, failed: 1 });

    const stats = await (await fetch(`${url}/_sandbox/stats`)).json() as
      { requests: number; accepted: number };
    expect(stats).toMatchObject({ requests: 15, accepted: 12 });

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.stderr()).toMatch(/stopped after 15 requests/);
    const logged = (await readFile(logFile, 'utf8')).split('\n').filter(Boolean)
      .map((l) => JSON.parse(l) as SandboxMessage);
    expect(logged).toHaveLength(12);
    expect(logged.map((m) => m.to)).not.toContain(e164For(3));
    const [sentRow] = await t.db<{ message_id: string }[]>`
      SELECT message_id FROM campaign_recipients WHERE phone_e164 = ${e164For(0)}`;
    const entry = logged.find((m) => m.to === e164For(0))!;
    expect(entry.wamid).toBe(sentRow!.message_id);
    // Arrival times are recorded, in order, close to now.
    const times = logged.map((m) => m.at);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(Math.abs(times[0]! - Date.now())).toBeLessThan(60_000);
  });

  it('--json prints the URL and port; --latency takes a range; --token any', async () => {
    const run = runCli(['sandbox', '--json', '--latency', '30-60', '--token', 'any'],
      { WACAMP_HOME: tempHome() });
    h.defer(async () => {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
      await run.exited;
    });
    await run.waitFor(/"port"/);
    const doc = JSON.parse(run.stdout()) as { url: string; port: number };
    expect(doc.url).toBe(`http://127.0.0.1:${doc.port}`);
    const answers = await Promise.all([1, 2, 3, 4].map(() => post(doc.url, '15550001111', 'x')));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.ms).toBeGreaterThanOrEqual(25);
    }
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });

  it('refuses a bad scenario file naming the field, a bad --latency, and a port in use',
    async () => {
      const dir = await scratch();
      const bad = path.join(dir, 'bad.json');
      await writeFile(bad, JSON.stringify({ failRate: 2 }));
      const r1 = await cli(['sandbox', '--scenario', bad], { WACAMP_HOME: tempHome() });
      expect(r1.code).toBe(2);
      expect(r1.stderr).toMatch(/scenario\.failRate/);

      const typo = path.join(dir, 'typo.json');
      await writeFile(typo, JSON.stringify({ failrate: 0.5 }));
      const r2 = await cli(['sandbox', '--scenario', typo], { WACAMP_HOME: tempHome() });
      expect(r2.code).toBe(2);
      expect(r2.stderr).toMatch(/unknown field "failrate"/);

      const r3 = await cli(['sandbox', '--latency', 'soon'], { WACAMP_HOME: tempHome() });
      expect(r3.code).toBe(2);
      expect(r3.stderr).toMatch(/--latency/);

      const taken = await listening();
      h.defer(() => new Promise((resolve) => taken.close(resolve)));
      const { port } = taken.address() as { port: number };
      const r4 = await cli(['sandbox', '--port', String(port)], { WACAMP_HOME: tempHome() });
      expect(r4.code).toBe(2);
      expect(r4.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`, 'i'));
    });
});
