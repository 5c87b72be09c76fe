/**
 * What a Cloud API answer means for a campaign. Pure: facts in, verdict out.
 *
 * It branches on the Graph API's `error.code`, never on the title text or the HTTP status, because
 * Meta returns the same throttling code as 400 in some places and 429 in others. The status is
 * consulted only when there is no error body to read. Anything that cannot prove the message was
 * NOT accepted is `unknown`: the Cloud API has no idempotency key, so retrying it could send a
 * person the same message twice.
 */
import type { ResponseFacts } from './client.js';
import { parseRetryAfter } from './retry-after.js';

export type ErrorClass =
  | 'fatal'
  | 'campaign_throttle'
  | 'recipient_throttle'
  | 'quality'
  | 'template_paused'
  | 'transient'
  | 'permanent'
  | 'payload'
  | 'unknown';

export type Verdict =
  | { class: 'sent'; messageId: string; messageStatus: string | null }
  | {
      class: ErrorClass;
      code: string;
      message: string;
      details: string | null;
      retryAfterMs: number | undefined;
    };

/** One code, or an inclusive range of codes. */
export type CodeSpec = number | readonly [from: number, to: number];

export interface CodeTableRow {
  class: ErrorClass;
  codes: readonly CodeSpec[];
  /** Rules of this class that are not a plain error code. */
  alsoWhen: string | null;
}

/**
 * The error-code table, in the order README prints it. classify() is built from it, so the
 * table cannot drift from the behaviour.
 */
export const CODE_TABLE: readonly CodeTableRow[] = [
  {
    class: 'fatal',
    codes: [0, 190, 3, 10, [200, 299], 131005, 368, 131031, 131042, 132001, 132007, 132016, 133010],
    alsoWhen: null,
  },
  {
    class: 'campaign_throttle',
    codes: [130429, 4, 80007, 613],
    alsoWhen: 'HTTP 429 without a Graph API error body (code http_429)',
  },
  { class: 'recipient_throttle', codes: [131056], alsoWhen: null },
  { class: 'quality', codes: [131048], alsoWhen: null },
  { class: 'template_paused', codes: [132015], alsoWhen: null },
  {
    class: 'transient',
    codes: [1, 2, 133004, 131000, 131016, 131057],
    alsoWhen:
      'code 1 on the first attempt only; an unlisted code in a 5xx error body; '
      + 'a network error before the request was written (ECONNREFUSED, ENOTFOUND, …)',
  },
  {
    class: 'permanent',
    codes: [131026, 131021, 131030, 131047, 131049, 131050, 130472, 131009, 132005],
    alsoWhen:
      'code 1 after the first attempt; any unlisted code in a non-5xx error body; '
      + 'a 4xx without an error body (code http_<status>)',
  },
  { class: 'payload', codes: [100, 131008, 132000, 132012, 135000], alsoWhen: null },
  {
    class: 'unknown',
    codes: [],
    alsoWhen:
      'timeout; aborted by the drain deadline; a network error after the request was written; '
      + 'a 5xx (or other non-2xx/4xx) without an error body; a 2xx without a message id',
  },
];

const DESCRIPTIONS: Record<ErrorClass, string> = {
  fatal: 'stop the campaign: drain in-flight sends, leave the rest pending, exit non-zero',
  campaign_throttle: 'slow the whole campaign sharply, ramp back slowly, retry the message',
  recipient_throttle: 'delay only this recipient (honouring Retry-After), then retry',
  quality: 'pause the campaign: Meta is limiting it for spam signals',
  template_paused: 'pause the campaign: Meta has paused the template',
  transient: 'retry this message with capped, jittered backoff, for a bounded number of tries',
  permanent: 'mark this recipient failed with the code; never retry',
  payload: 'pause the campaign on the first one: the template or its parameters are wrong',
  unknown: 'outcome unknown (it may have been sent): show the operator, never retry',
};

/** One line on what wacamp does with a verdict of this class. */
export function describeClass(errorClass: ErrorClass): string {
  return DESCRIPTIONS[errorClass];
}

const CLASS_BY_CODE: ReadonlyMap<number, ErrorClass> = buildCodeIndex(CODE_TABLE);

function buildCodeIndex(table: readonly CodeTableRow[]): Map<number, ErrorClass> {
  const index = new Map<number, ErrorClass>();
  for (const row of table) {
    for (const spec of row.codes) {
      const [from, to] = typeof spec === 'number' ? [spec, spec] : spec;
      for (let code = from; code <= to; code++) index.set(code, row.class);
    }
  }
  return index;
}

export function classify(facts: ResponseFacts, ctx: { attempt: number; nowMs: number }): Verdict {
  switch (facts.kind) {
    case 'timeout':
      return failure('unknown', 'timeout', 'no answer before the request timeout');
    case 'aborted':
      return failure('unknown', 'aborted', 'aborted by the drain deadline while in flight');
    case 'network':
      return facts.requestWritten
        ? failure('unknown', facts.errorCode, 'connection failed after the request was written')
        : failure('transient', facts.errorCode, 'connection failed before the request was sent');
    case 'http':
      return classifyHttp(facts, ctx);
  }
}

type HttpFacts = Extract<ResponseFacts, { kind: 'http' }>;

function classifyHttp(facts: HttpFacts, ctx: { attempt: number; nowMs: number }): Verdict {
  const retryAfterMs = parseRetryAfter(facts.retryAfter, ctx.nowMs);
  const isSuccess = facts.status >= 200 && facts.status < 300;

  // An accepted message wins over everything else: treating it as an error could resend it.
  if (isSuccess) {
    const sent = readSent(facts);
    if (sent) return sent;
  }

  const error = facts.bodyParsed ? readGraphError(facts.body) : null;
  if (error) {
    const errorClass = classOfCode(error.code, facts.status, ctx.attempt);
    return { class: errorClass, ...error, code: String(error.code), retryAfterMs };
  }

  // No error body to read: only now does the HTTP status speak.
  const status = facts.status;
  const bare = `HTTP ${status} without a Graph API error body`;
  const code = `http_${status}`;
  if (isSuccess) {
    return failure('unknown', 'no_message_id', 'success without a message id', retryAfterMs);
  }
  if (status === 429) return failure('campaign_throttle', code, bare, retryAfterMs);
  if (status >= 400 && status < 500) return failure('permanent', code, bare, retryAfterMs);
  return failure('unknown', code, bare, retryAfterMs);
}

function classOfCode(code: number, status: number, attempt: number): ErrorClass {
  // Meta's generic "API Unknown" error: worth one retry, not a loop.
  if (code === 1) return attempt === 1 ? 'transient' : 'permanent';
  const known = CLASS_BY_CODE.get(code);
  if (known) return known;
  // An error code we do not know, from a server that says it failed: try again, boundedly.
  return status >= 500 && status < 600 ? 'transient' : 'permanent';
}

function readSent(facts: HttpFacts): Verdict | null {
  if (!facts.bodyParsed || !isObject(facts.body)) return null;
  const messages = facts.body.messages;
  const first: unknown = Array.isArray(messages) ? messages[0] : undefined;
  if (!isObject(first) || typeof first.id !== 'string' || first.id === '') return null;
  const status = first.message_status;
  return {
    class: 'sent',
    messageId: first.id,
    messageStatus: typeof status === 'string' ? status : null,
  };
}

/** `error` from a Graph API error body, or null when there is none with a numeric code. */
function readGraphError(body: unknown) {
  if (!isObject(body) || !isObject(body.error)) return null;
  const { code, message, error_data: data } = body.error;
  const numeric = typeof code === 'string' && /^\d+$/.test(code) ? Number(code) : code;
  if (typeof numeric !== 'number' || !Number.isInteger(numeric)) return null;
  return {
    code: numeric,
    message: typeof message === 'string' && message !== '' ? message : `Graph API error ${numeric}`,
    details: isObject(data) && typeof data.details === 'string' ? data.details : null,
  };
}

/** A verdict whose message is our own sentence, for answers without a Graph API error. */
function failure(
  errorClass: ErrorClass,
  code: string,
  message: string,
  retryAfterMs?: number,
): Verdict {
  return { class: errorClass, code, message, details: null, retryAfterMs };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
