/**
 * The HTTP edge to the WhatsApp Cloud API. It reports what happened on the wire as plain facts
 * (`ResponseFacts`) and never decides what they mean: that is classify.ts's job. It never rejects,
 * so a worker cannot lose track of a message to an unexpected throw.
 *
 * undici's Pool is used directly rather than fetch: in our benchmark it was 6–10× faster, and the
 * raw error codes it surfaces are what tells a refused connection from a reset one.
 */
import { Pool } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { usageError } from '../errors.js';

export interface ApiClientOptions {
  /** Scheme, host and optional path prefix, e.g. 'https://graph.facebook.com'. */
  baseUrl: string;
  /** Graph API version, e.g. 'v23.0'. */
  version: string;
  phoneNumberId: string;
  /** Sent only in the Authorization header; never logged and never put in an error message. */
  accessToken: string;
  /** undici Pool connections, normally one per worker. Integer ≥ 1. */
  connections: number;
  /** Whole-request deadline (connect, send, headers and body), ms. */
  requestTimeoutMs: number;
}

export type ResponseFacts =
  | { kind: 'http'; status: number; body: unknown; bodyParsed: boolean; retryAfter: string | null }
  | { kind: 'network'; errorCode: string; requestWritten: boolean }
  | { kind: 'timeout' }
  /** Our own drain deadline (the caller's signal) aborted it. */
  | { kind: 'aborted' };

export interface ApiClient {
  /** POST {base}/{version}/{phoneNumberId}/messages. Never rejects. */
  sendMessage(body: object, signal?: AbortSignal): Promise<ResponseFacts>;
  /** GET {base}/{version}/{phoneNumberId}, for `check`. Never rejects. */
  getPhoneNumber(): Promise<ResponseFacts>;
  /** Waits for in-flight requests, then closes every connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Errors that can only happen before a single byte of the request left: DNS failures, a refused
 * or timed-out connect, and a pool that was already closed. Everything else — resets, "other
 * side closed", socket errors — may follow a written request, so it counts as written.
 * EHOSTUNREACH and friends are left out on purpose: Linux can report them on an established
 * connection too.
 */
const NEVER_WRITTEN = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  // undici refuses a request it cannot encode (a header with a line break) before writing it.
  'UND_ERR_INVALID_ARG',
]);

/** undici's own timers back ours up; when one of them fires first it is still a timeout. */
const UNDICI_TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Cloud API answers are a few hundred bytes; anything past this is not an answer we can use. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Connect attempts should fail on their own (proving nothing was sent) before our deadline. */
const MAX_CONNECT_TIMEOUT_MS = 10_000;

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export function createApiClient(o: ApiClientOptions): ApiClient {
  const { origin, pathPrefix } = validateOptions(o);
  const pool = new Pool(origin, {
    connections: o.connections,
    pipelining: 1,
    connectTimeout: Math.min(MAX_CONNECT_TIMEOUT_MS, o.requestTimeoutMs),
    headersTimeout: o.requestTimeoutMs,
    bodyTimeout: o.requestTimeoutMs,
  });

  const phonePath = `${pathPrefix}/${o.version}/${encodeURIComponent(o.phoneNumberId)}`;
  const auth = { authorization: `Bearer ${o.accessToken}` };
  const jsonHeaders = { ...auth, 'content-type': 'application/json' };
  let closing: Promise<void> | undefined;

  return {
    sendMessage(body, signal) {
      // Checked here, not left to undici: once closed its pool reports UND_ERR_DESTROYED, a code
      // it also uses for requests cut off mid-flight, which we must treat as written.
      if (closing) return Promise.resolve(notSent('client_closed'));
      let payload: string;
      try {
        payload = JSON.stringify(body);
      } catch {
        // A circular or BigInt body is our bug, and it never left the process.
        return Promise.resolve(notSent('body_not_serialisable'));
      }
      const spec: RequestSpec = {
        method: 'POST', path: `${phonePath}/messages`, headers: jsonHeaders, body: payload,
      };
      return perform(pool, spec, o.requestTimeoutMs, signal);
    },
    getPhoneNumber() {
      if (closing) return Promise.resolve(notSent('client_closed'));
      return perform(pool, { method: 'GET', path: phonePath, headers: auth }, o.requestTimeoutMs);
    },
    close() {
      closing ??= pool.close();
      return closing;
    },
  };
}

async function perform(
  pool: Pool,
  spec: RequestSpec,
  timeoutMs: number,
  callerSignal?: AbortSignal,
): Promise<ResponseFacts> {
  // Already aborted: nothing goes out, and saying "aborted" would wrongly mark it as unknown.
  if (callerSignal?.aborted) return notSent('aborted_before_send');

  const deadline = linkDeadline(timeoutMs, callerSignal);
  try {
    const res = await pool.request({ ...spec, signal: deadline.signal });
    const text = await readCapped(res.body);
    return httpFacts(res.statusCode, res.headers, text);
  } catch (err) {
    return failureFacts(err, deadline.trippedBy());
  } finally {
    deadline.dispose();
  }
}

/**
 * One AbortController per request, tripped by our timer or by the caller's signal, whichever
 * comes first. Not AbortSignal.any: on Node 20 it leaves a WeakRef behind on the long-lived
 * caller signal for every request (nodejs/node#55351), which grows with the campaign.
 */
function linkDeadline(timeoutMs: number, callerSignal?: AbortSignal) {
  const controller = new AbortController();
  let trippedBy: 'timeout' | 'aborted' | null = null;
  const trip = (cause: 'timeout' | 'aborted') => {
    if (trippedBy !== null) return;
    trippedBy = cause;
    controller.abort(new Error(cause === 'timeout' ? 'request timed out' : 'request aborted'));
  };

  const timer = setTimeout(() => trip('timeout'), timeoutMs);
  const onCallerAbort = () => trip('aborted');
  callerSignal?.addEventListener('abort', onCallerAbort, { once: true });

  return {
    signal: controller.signal,
    trippedBy: () => trippedBy,
    dispose() {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    },
  };
}

/** The whole body as text, or null when it exceeds MAX_BODY_BYTES. */
async function readCapped(body: AsyncIterable<Buffer>): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    // Leaving the loop early destroys the stream, and with it that connection.
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

type HttpFacts = Extract<ResponseFacts, { kind: 'http' }>;

function httpFacts(status: number, headers: IncomingHttpHeaders, text: string | null): HttpFacts {
  const header = headers['retry-after'];
  const retryAfter = (Array.isArray(header) ? header[0] : header) ?? null;
  const facts: HttpFacts = { kind: 'http', status, body: text, bodyParsed: false, retryAfter };
  if (text === null || text === '') return facts;
  try {
    return { ...facts, body: JSON.parse(text) as unknown, bodyParsed: true };
  } catch {
    // Not JSON (a proxy's HTML error page, say): the raw text stays in `body` for diagnosis.
    return facts;
  }
}

function failureFacts(err: unknown, trippedBy: 'timeout' | 'aborted' | null): ResponseFacts {
  if (trippedBy === 'timeout') return { kind: 'timeout' };
  if (trippedBy === 'aborted') return { kind: 'aborted' };

  const codes = errorCodes(err);
  const errorCode = codes[0] ?? 'unknown_error';
  if (UNDICI_TIMEOUTS.has(errorCode)) return { kind: 'timeout' };
  // Several connect attempts (IPv6 then IPv4) arrive as one AggregateError: all must prove it.
  const requestWritten = codes.length === 0 || !codes.every((code) => NEVER_WRITTEN.has(code));
  return { kind: 'network', errorCode, requestWritten };
}

/** Error codes carried by an error, looking inside AggregateError and `cause`. */
function errorCodes(err: unknown): string[] {
  if (!(err instanceof Error)) return [];
  const own = (err as { code?: unknown }).code;
  const ownCodes = typeof own === 'string' ? [own] : [];
  if (err instanceof AggregateError && err.errors.length > 0) {
    // An attempt without a code cannot prove anything, so it stands in as an unknown code.
    const inner = err.errors.map((attempt) => errorCodes(attempt)[0] ?? 'unknown_error');
    return [...ownCodes, ...inner];
  }
  return ownCodes.length > 0 ? ownCodes : errorCodes(err.cause);
}

function notSent(errorCode: string): ResponseFacts {
  return { kind: 'network', errorCode, requestWritten: false };
}

function validateOptions(o: ApiClientOptions): { origin: string; pathPrefix: string } {
  let url: URL;
  try {
    url = new URL(o.baseUrl);
  } catch (err) {
    throw usageError('api_base_url', 'API base URL is not a valid URL', err);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw usageError('api_base_url', `API base URL must be http(s), got ${url.protocol}`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw usageError('api_base_url', 'API base URL must not carry a query, fragment or user');
  }
  if (!/^v\d+\.\d+$/.test(o.version)) {
    throw usageError('api_version', `API version must look like v23.0, got "${o.version}"`);
  }
  if (o.phoneNumberId.trim() === '') {
    throw usageError('api_phone_number_id', 'phone number id must not be empty');
  }
  if (o.accessToken.trim() === '') {
    throw usageError('api_access_token', 'access token must not be empty');
  }
  if (!Number.isInteger(o.connections) || o.connections < 1) {
    throw usageError('api_connections', `connections must be an integer ≥ 1, got ${o.connections}`);
  }
  if (!Number.isInteger(o.requestTimeoutMs) || o.requestTimeoutMs < 1) {
    throw usageError('api_timeout', `request timeout must be ≥ 1 ms, got ${o.requestTimeoutMs}`);
  }
  return { origin: url.origin, pathPrefix: url.pathname.replace(/\/+$/, '') };
}
