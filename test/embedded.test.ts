import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createRequire } from 'node:module';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../src/db/connect.js';
import { withFileLock } from '../src/embedded/lock.js';
import { canTraverse } from '../src/embedded/os-user.js';
import { parsePidFile } from '../src/embedded/postmaster.js';
import { embeddedStatus, ensureEmbedded, stopEmbedded } from '../src/embedded/server.js';

type Child = ChildProcessByStdio<Writable, Readable, null>;

const isRoot = process.getuid?.() === 0;
const homes: string[] = [];
const children: Child[] = [];

/** A home of its own under the temp folder, enterable by the postgres user when we are root. */
async function freshHome(): Promise<string> {
  const parent = await mkdtemp(path.join(os.tmpdir(), 'wacamp-embedded-'));
  await chmod(parent, 0o755);
  const home = path.join(parent, 'home');
  homes.push(parent);
  return home;
}

async function selectOne(url: string): Promise<number | undefined> {
  const db = connect(url, { max: 1, connectTimeoutS: 5 });
  try {
    const [row] = await db<{ one: number }[]>`SELECT 1 AS one`;
    return row?.one;
  } finally {
    await db.end();
  }
}

afterAll(async () => {
  // A child left by a failed assertion would otherwise outlive the run.
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  }
  for (const parent of homes) {
    await stopEmbedded(path.join(parent, 'home'));
    await rm(parent, { recursive: true, force: true });
  }
});

describe('the embedded server', () => {
  let home: string;
  let first: Awaited<ReturnType<typeof ensureEmbedded>>;

  beforeAll(async () => {
    home = await freshHome();
    first = await ensureEmbedded(home);
  });

  test('is initialised and started on first use, with a private state file', async () => {
    expect(first).toMatchObject({ started: true, initialised: true, dataDir: `${home}/pg` });
    expect(new URL(first.url).hostname).toBe('127.0.0.1');
    expect(new URL(first.url).pathname).toBe('/wacamp');
    expect(await selectOne(first.url)).toBe(1);

    const stateFile = path.join(home, 'embedded.json');
    expect((await stat(stateFile)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(stateFile, 'utf8'))).toMatchObject({ port: first.port });
  });

  test('refuses a wrong password', async () => {
    const wrong = new URL(first.url);
    wrong.password = 'not-the-password';
    await expect(selectOne(wrong.toString())).rejects.toThrow(/password/);
  });

  test('supports SKIP LOCKED and advisory locks across connections', async () => {
    const a = connect(first.url, { max: 1 });
    const b = connect(first.url, { max: 1 });
    try {
      await a`CREATE TABLE IF NOT EXISTS jobs (id int PRIMARY KEY)`;
      await a`INSERT INTO jobs SELECT generate_series(1, 3) ON CONFLICT DO NOTHING`;
      const claim = 'SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED';
      await a.begin(async (ta) => {
        const [mine] = await ta.unsafe<{ id: number }[]>(claim);
        const [theirs] = await b.begin((tb) => tb.unsafe<{ id: number }[]>(claim));
        expect([mine?.id, theirs?.id]).toEqual([1, 2]);
      });

      const [gotA] = await a<{ got: boolean }[]>`SELECT pg_try_advisory_lock(42) AS got`;
      const [gotB] = await b<{ got: boolean }[]>`SELECT pg_try_advisory_lock(42) AS got`;
      expect([gotA?.got, gotB?.got]).toEqual([true, false]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('is found again rather than started twice', async () => {
    const again = await ensureEmbedded(home);
    expect(again).toMatchObject({ started: false, initialised: false, pid: first.pid });
    expect(again.url).toBe(first.url);
    expect(await embeddedStatus(home)).toEqual({
      url: first.url, port: first.port, dataDir: first.dataDir, pid: first.pid,
    });
  });

  test('stops on request, and says so only once', async () => {
    expect(await stopEmbedded(home)).toBe(true);
    expect(await embeddedStatus(home)).toBeNull();
    await expect(selectOne(first.url)).rejects.toThrow();
    expect(await stopEmbedded(home)).toBe(false);
  });

  test('restarts quickly, on another port when its own is taken', async () => {
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(first.port, '127.0.0.1', resolve));
    try {
      const lines: string[] = [];
      const startedAt = performance.now();
      const moved = await ensureEmbedded(home, (line) => lines.push(line));
      expect(performance.now() - startedAt).toBeLessThan(1_000);
      expect(moved).toMatchObject({ started: true, initialised: false });
      expect(moved.port).not.toBe(first.port);
      expect(lines.join('\n')).toContain(`port ${first.port} is taken`);
      expect(await selectOne(moved.url)).toBe(1);
      expect((await embeddedStatus(home))?.port).toBe(moved.port);
    } finally {
      squatter.close();
    }
    expect(await stopEmbedded(home)).toBe(true);
  });

  test('survives a Ctrl-C to the command that started it', async () => {
    const child = await startInChild(home);
    const exited = once(child, 'exit');
    const [line] = (await once(createInterface(child.stdout), 'line')) as [string];
    const reported = JSON.parse(line) as { started: boolean; url: string };
    expect(reported.started).toBe(true);

    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    process.kill(-child.pid!, 'SIGINT');
    expect((await exited)[1]).toBe('SIGINT');

    expect(await selectOne(reported.url)).toBe(1);
    expect(await stopEmbedded(home)).toBe(true);
  });
});

describe('initialisation', () => {
  test('happens once when two callers race', async () => {
    const home = await freshHome();
    const [one, two] = await Promise.all([ensureEmbedded(home), ensureEmbedded(home)]);
    expect([one.initialised, two.initialised].sort()).toEqual([false, true]);
    expect(one.url).toBe(two.url);
    expect(await stopEmbedded(home)).toBe(true);
  });

  test('is redone after a run that died halfway', async () => {
    const home = await freshHome();
    await mkdir(path.join(home, 'pg'), { recursive: true });
    await writeFile(path.join(home, 'pg', 'PG_VERSION'), '17\n');
    const halfDone = { port: 1, user: 'wacamp', password: 'x', database: 'wacamp' };
    await writeFile(
      path.join(home, 'embedded.json'),
      JSON.stringify({ ...halfDone, initialised: false }),
    );

    const info = await ensureEmbedded(home);
    expect(info.initialised).toBe(true);
    expect(await selectOne(info.url)).toBe(1);
    expect(await stopEmbedded(home)).toBe(true);
  });

  test('refuses a data folder without its state file', async () => {
    const home = await freshHome();
    await mkdir(path.join(home, 'pg'), { recursive: true });
    await writeFile(path.join(home, 'pg', 'PG_VERSION'), '17\n');
    await expect(ensureEmbedded(home)).rejects.toMatchObject({ code: 'embedded_state' });
  });

  test.runIf(isRoot)('names the folder the postgres user cannot enter', async () => {
    const locked = await mkdtemp(path.join(os.tmpdir(), 'wacamp-locked-'));
    homes.push(locked);
    await chmod(locked, 0o700);
    const attempt = ensureEmbedded(path.join(locked, 'home'));
    await expect(attempt).rejects.toMatchObject({ code: 'embedded_home', exitCode: 2 });
    await expect(attempt).rejects.toThrow(`cannot enter ${locked}; set WACAMP_HOME`);
  });
});

describe('helpers', () => {
  test('postmaster.pid is read for pid, port and readiness', () => {
    const text = '4242\n/data\n1700000000\n5433\n\n127.0.0.1\n  1234  5\nready   \n';
    expect(parsePidFile(text)).toEqual({ pid: 4242, port: 5433, ready: true });
    expect(parsePidFile(text.replace('ready   ', 'starting'))?.ready).toBe(false);
    expect(parsePidFile('garbage')).toBeNull();
  });

  test('folder traversal follows owner, then group, then other bits', () => {
    const pg = { uid: 101, gid: 104 };
    expect(canTraverse({ uid: 0, gid: 0, mode: 0o700 }, pg)).toBe(false);
    expect(canTraverse({ uid: 0, gid: 0, mode: 0o711 }, pg)).toBe(true);
    expect(canTraverse({ uid: 0, gid: 104, mode: 0o750 }, pg)).toBe(true);
    expect(canTraverse({ uid: 0, gid: 104, mode: 0o701 }, pg)).toBe(false);
    expect(canTraverse({ uid: 101, gid: 0, mode: 0o100 }, pg)).toBe(true);
  });

  test('the file lock lets one holder in at a time', async () => {
    const dir = await freshHome();
    await mkdir(dir, { recursive: true });
    const lock = path.join(dir, 'test.lock');
    let inside = 0;
    let most = 0;
    const hold = () => withFileLock(lock, async () => {
      most = Math.max(most, ++inside);
      await new Promise((resolve) => setImmediate(resolve));
      inside -= 1;
    });
    await Promise.all([hold(), hold(), hold()]);
    expect(most).toBe(1);
  });

  test('a lock left by a dead process is taken over', async () => {
    const dir = await freshHome();
    await mkdir(dir, { recursive: true });
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const lock = path.join(dir, 'test.lock');
    await writeFile(lock, `${dead.pid} leftover`);
    expect(await withFileLock(lock, async () => 'got it', { waitMs: 1_000 })).toBe('got it');
  });

  test('a lock held by a live process makes others wait, then give up', async () => {
    const dir = await freshHome();
    await mkdir(dir, { recursive: true });
    const lock = path.join(dir, 'test.lock');
    await writeFile(lock, `${process.pid} someone-else`);
    await expect(withFileLock(lock, async () => 'never', { waitMs: 200 }))
      .rejects.toMatchObject({ code: 'embedded_lock' });
  });
});

/**
 * Runs ensureEmbedded in a separate node process, in a process group of its own as a shell
 * would start a command. The TypeScript sources load through a small loader that transpiles
 * them with the project's own `typescript`, since Node 20 cannot run TypeScript itself.
 */
async function startInChild(home: string): Promise<Child> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-child-'));
  homes.push(dir);
  const typescript = pathToFileURL(createRequire(import.meta.url).resolve('typescript')).href;
  await writeFile(path.join(dir, 'hooks.mjs'), loaderHooks(typescript));
  await writeFile(path.join(dir, 'register.mjs'),
    "import { register } from 'node:module';\n" +
    "register(new URL('./hooks.mjs', import.meta.url));\n");
  await writeFile(path.join(dir, 'child.mjs'), [
    'const { ensureEmbedded } = await import(process.argv[2]);',
    'const info = await ensureEmbedded(process.argv[3]);',
    'process.stdout.write(JSON.stringify(info) + "\\n");',
    'setInterval(() => {}, 1_000);',
  ].join('\n'));

  const server = new URL('../src/embedded/server.ts', import.meta.url);
  const child = spawn(process.execPath, [
    '--import', pathToFileURL(path.join(dir, 'register.mjs')).href,
    path.join(dir, 'child.mjs'), server.href, home,
  ], { detached: true, stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

function loaderHooks(typescriptUrl: string): string {
  return `
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ts from '${typescriptUrl}';

export async function resolve(specifier, context, next) {
  const fromTs = context.parentURL?.endsWith('.ts');
  if (fromTs && specifier.startsWith('.') && specifier.endsWith('.js')) {
    const candidate = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (existsSync(fileURLToPath(candidate))) return { url: candidate.href, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = await readFile(fileURLToPath(url), 'utf8');
  const output = ts.transpileModule(source, { compilerOptions: {
    module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  return { format: 'module', source: output.outputText, shortCircuit: true };
}
`;
}
