/**
 * `wacamp sandbox`: a local fake of the Cloud API's messages endpoint, for demos, tests and the
 * benchmark. It answers like Meta (same paths, token check, body checks, error bodies) and can
 * be told to misbehave through a scenario (see scenario.ts and engine.ts).
 *
 * Endpoints:
 *   POST /{version}/{phone_number_id}/messages   send a template message
 *   GET  /{version}/{phone_number_id}            the number's profile (used by `wacamp check`)
 *   GET  /_sandbox/messages                      accepted messages, JSON array
 *   GET  /_sandbox/stats                         counters, JSON
 *   PUT  /_sandbox/scenario                      replace the scenario (JSON body), 204
 * The /_sandbox/ endpoints need no token: they exist for the person or test running it.
 *
 * The hot path stays lean for ~10,000 requests/s on 2 cores: node:http, no logging per request,
 * one buffered log write per 200 ms.
 */
import { usageError } from '../errors.js';
import { ScenarioEngine } from './engine.js';
import { MessageLog } from './message-log.js';
import { SandboxServer } from './sandbox-server.js';
import { parseScenario, type ScenarioInput } from './scenario.js';

export type { Scenario, ScenarioInput } from './scenario.js';
export { loadScenarioFile, parseScenario } from './scenario.js';

export interface SandboxOptions {
  /** Interface to listen on; default '127.0.0.1'. */
  host?: string;
  /** TCP port; default 0, a free port chosen by the system (read it back from `port`). */
  port?: number;
  /** Expected bearer token; default 'sandbox-token'; null accepts any non-empty token. */
  accessToken?: string | null;
  /** Delay before every answer in ms: fixed, or uniform in [min, max]; default 0. */
  latencyMs?: number | [number, number];
  scenario?: ScenarioInput;
  /** NDJSON file, one line per accepted message; appended, flushed every 200 ms and on close. */
  logFile?: string;
  /** Keep accepted messages in memory for `messages()`; default true. Off for long benchmarks. */
  keepInMemory?: boolean;
  /** Randomness for shares and latency ranges; default Math.random (shares: the scenario's seed,
   * when it has one). */
  random?: () => number;
  /** Clock in ms since the epoch; default a monotonic high-resolution clock. For tests. */
  now?: () => number;
}

/** One accepted message; also the shape of each line of the NDJSON log. */
export interface SandboxMessage {
  /** Arrival time, ms since the epoch, fractional. */
  at: number;
  to: string;
  wamid: string;
  template: string;
  language: string;
  components: unknown[];
}

export interface Sandbox {
  url: string;
  port: number;
  /** Accepted messages, oldest first (empty when keepInMemory is false). */
  messages(): SandboxMessage[];
  /** Every POST …/messages request received, whatever its answer. */
  requests(): number;
  /** Arrival time (ms) of each of those requests, in arrival order. */
  arrivals(): number[];
  setScenario(s: ScenarioInput): void;
  /** Stops listening, cuts open connections (held requests too) and flushes the log. */
  close(): Promise<void>;
}

/** Catches bad options before a socket is opened, naming the option and what it expects. */
function validateOptions(o: SandboxOptions): void {
  const port = o.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw usageError('SANDBOX_OPTIONS', `Sandbox port must be 0..65535, got ${String(o.port)}`);
  }
  const latency = o.latencyMs ?? 0;
  const [min, max] = Array.isArray(latency) ? latency : [latency, latency];
  if (!(min >= 0 && max >= min)) {
    const got = JSON.stringify(latency);
    const expected = 'a number of ms >= 0, or [min, max] with 0 <= min <= max';
    throw usageError('SANDBOX_OPTIONS', `Sandbox latencyMs must be ${expected}, got ${got}`);
  }
  if (o.accessToken === '') {
    throw usageError('SANDBOX_OPTIONS', 'Sandbox accessToken must be non-empty, or null for any');
  }
}

export async function startSandbox(o: SandboxOptions = {}): Promise<Sandbox> {
  validateOptions(o);
  const engine = new ScenarioEngine(parseScenario(o.scenario), o.random);
  const log = o.logFile === undefined ? undefined : await MessageLog.open(o.logFile);
  const sandbox = new SandboxServer(o, engine, log);
  try {
    await sandbox.listen(o.host ?? '127.0.0.1', o.port ?? 0);
  } catch (err) {
    await log?.close();
    throw err;
  }
  return sandbox;
}
