import { describe, expect, it } from 'vitest';
import { CODE_TABLE, classify, describeClass, type ErrorClass } from '../src/api/classify.js';
import type { ResponseFacts } from '../src/api/client.js';

const NOW = Date.UTC(2026, 10, 1, 12, 0, 0);
const first = { attempt: 1, nowMs: NOW };

function graphError(
  code: number | string,
  status = 400,
  extra: { details?: string; retryAfter?: string } = {},
): ResponseFacts {
  const body = {
    error: {
      message: `(#${code}) Title from Meta`,
      type: 'OAuthException',
      code,
      error_data: { messaging_product: 'whatsapp', details: extra.details ?? `details ${code}` },
      fbtrace_id: 'AbCdEf',
    },
  };
  return { kind: 'http', status, body, bodyParsed: true, retryAfter: extra.retryAfter ?? null };
}

function bare(status: number, body: unknown = '<html>bad gateway</html>'): ResponseFacts {
  return { kind: 'http', status, body, bodyParsed: false, retryAfter: null };
}

// Every code in /work/shared/FIELD-NOTES.md. The brief binds 131009 and 132005 to `permanent`,
// although the field notes list them under payload/template.
const FIELD_NOTES_CODES: Array<[number, ErrorClass]> = [
  [0, 'fatal'], [190, 'fatal'], [3, 'fatal'], [10, 'fatal'],
  [200, 'fatal'], [250, 'fatal'], [299, 'fatal'],
  [131005, 'fatal'], [368, 'fatal'], [131031, 'fatal'], [131042, 'fatal'],
  [132001, 'fatal'], [132007, 'fatal'], [132016, 'fatal'], [133010, 'fatal'],
  [130429, 'campaign_throttle'], [4, 'campaign_throttle'], [80007, 'campaign_throttle'],
  [613, 'campaign_throttle'],
  [131056, 'recipient_throttle'],
  [131048, 'quality'],
  [132015, 'template_paused'],
  [1, 'transient'], [2, 'transient'], [133004, 'transient'], [131000, 'transient'],
  [131016, 'transient'], [131057, 'transient'],
  [131026, 'permanent'], [131021, 'permanent'], [131030, 'permanent'], [131047, 'permanent'],
  [131049, 'permanent'], [131050, 'permanent'], [130472, 'permanent'],
  [131009, 'permanent'], [132005, 'permanent'],
  [100, 'payload'], [131008, 'payload'], [132000, 'payload'], [132012, 'payload'],
  [135000, 'payload'],
];

describe('classify: Graph API error codes', () => {
  it.each(FIELD_NOTES_CODES)('code %i → %s', (code, expected) => {
    const verdict = classify(graphError(code), first);
    expect(verdict).toEqual({
      class: expected,
      code: String(code),
      message: `(#${code}) Title from Meta`,
      details: `details ${code}`,
      retryAfterMs: undefined,
    });
  });

  it('codes just outside the 200–299 permission range are not fatal', () => {
    expect(classify(graphError(199), first).class).toBe('permanent');
    expect(classify(graphError(300), first).class).toBe('permanent');
  });

  it('code 1 is transient on the first attempt and permanent after it', () => {
    expect(classify(graphError(1, 500), { attempt: 1, nowMs: NOW }).class).toBe('transient');
    expect(classify(graphError(1, 500), { attempt: 2, nowMs: NOW }).class).toBe('permanent');
    expect(classify(graphError(1, 400), { attempt: 3, nowMs: NOW }).class).toBe('permanent');
  });

  it('an unrecognised code is permanent, unless a 5xx carries it', () => {
    expect(classify(graphError(999_999, 400), first).class).toBe('permanent');
    expect(classify(graphError(999_999, 200), first).class).toBe('permanent');
    expect(classify(graphError(999_999, 500), first).class).toBe('transient');
    expect(classify(graphError(999_999, 503), first).class).toBe('transient');
  });

  it('a classed code keeps its class whatever 5xx it arrives with', () => {
    expect(classify(graphError(131026, 500), first).class).toBe('permanent');
    expect(classify(graphError(190, 503), first).class).toBe('fatal');
  });

  it('accepts a numeric string code', () => {
    expect(classify(graphError('131056'), first)).toMatchObject({
      class: 'recipient_throttle', code: '131056',
    });
  });

  it('falls back to a local message and null details when Meta omits them', () => {
    const facts: ResponseFacts = {
      kind: 'http', status: 400, body: { error: { code: 131026 } }, bodyParsed: true,
      retryAfter: null,
    };
    expect(classify(facts, first)).toEqual({
      class: 'permanent', code: '131026', message: 'Graph API error 131026', details: null,
      retryAfterMs: undefined,
    });
  });
});

describe('classify: branch on the code, not the status', () => {
  it('429 with code 130429 and 400 with code 130429 are the same campaign throttle', () => {
    const on429 = classify(graphError(130429, 429, { retryAfter: '7' }), first);
    const on400 = classify(graphError(130429, 400), first);
    expect(on429).toMatchObject({ class: 'campaign_throttle', code: '130429', retryAfterMs: 7000 });
    expect(on400).toMatchObject({ class: 'campaign_throttle', code: '130429' });
  });

  it('429 without an error body is a campaign throttle coded http_429', () => {
    const facts: ResponseFacts = { ...bare(429, 'Too Many Requests'), retryAfter: '3' };
    expect(classify(facts, first)).toEqual({
      class: 'campaign_throttle', code: 'http_429',
      message: 'HTTP 429 without a Graph API error body', details: null, retryAfterMs: 3000,
    });
  });

  it('429 whose JSON has no error object is also http_429', () => {
    const facts: ResponseFacts = {
      kind: 'http', status: 429, body: { message: 'slow down' }, bodyParsed: true, retryAfter: null,
    };
    expect(classify(facts, first)).toMatchObject({ class: 'campaign_throttle', code: 'http_429' });
  });

  it('a 429 status carrying a permanent code is permanent', () => {
    expect(classify(graphError(131026, 429), first).class).toBe('permanent');
  });

  it('keeps Retry-After from a recipient throttle', () => {
    const verdict = classify(graphError(131056, 400, { retryAfter: '6' }), first);
    expect(verdict).toMatchObject({ class: 'recipient_throttle', retryAfterMs: 6000 });
  });

  it('drops an absurd Retry-After so the caller falls back to backoff', () => {
    const verdict = classify(graphError(131056, 400, { retryAfter: '86400' }), first);
    expect(verdict).toMatchObject({ class: 'recipient_throttle', retryAfterMs: undefined });
  });
});

describe('classify: answers without an error body', () => {
  it.each([
    [400, 'permanent', 'http_400'],
    [401, 'permanent', 'http_401'],
    [404, 'permanent', 'http_404'],
    [500, 'unknown', 'http_500'],
    [502, 'unknown', 'http_502'],
    [503, 'unknown', 'http_503'],
    [504, 'unknown', 'http_504'],
    [302, 'unknown', 'http_302'],
  ])('HTTP %i → %s (%s)', (status, expected, code) => {
    expect(classify(bare(status), first)).toMatchObject({ class: expected, code, details: null });
  });

  it('treats an empty body like a missing one', () => {
    const facts: ResponseFacts = {
      kind: 'http', status: 503, body: '', bodyParsed: false, retryAfter: null,
    };
    expect(classify(facts, first)).toMatchObject({ class: 'unknown', code: 'http_503' });
  });
});

describe('classify: success', () => {
  function ok(body: unknown): ResponseFacts {
    return { kind: 'http', status: 200, body, bodyParsed: true, retryAfter: null };
  }

  it('2xx with a message id is sent', () => {
    const body = {
      messaging_product: 'whatsapp',
      contacts: [{ input: '4915112345678', wa_id: '4915112345678' }],
      messages: [{ id: 'wamid.HBgL', message_status: 'held_for_quality_assessment' }],
    };
    expect(classify(ok(body), first)).toEqual({
      class: 'sent', messageId: 'wamid.HBgL', messageStatus: 'held_for_quality_assessment',
    });
  });

  it('a missing message_status is null', () => {
    expect(classify(ok({ messages: [{ id: 'wamid.X' }] }), first)).toEqual({
      class: 'sent', messageId: 'wamid.X', messageStatus: null,
    });
  });

  it.each([
    ['no messages', { contacts: [] }],
    ['empty messages', { messages: [] }],
    ['empty id', { messages: [{ id: '' }] }],
    ['numeric id', { messages: [{ id: 42 }] }],
  ])('2xx with %s is unknown (no_message_id)', (_label, body) => {
    expect(classify(ok(body), first)).toMatchObject({ class: 'unknown', code: 'no_message_id' });
  });

  it('2xx that is not JSON is unknown (no_message_id)', () => {
    expect(classify(bare(200, 'OK'), first)).toMatchObject({
      class: 'unknown', code: 'no_message_id',
    });
  });
});

describe('classify: no HTTP answer', () => {
  it('timeout and abort are unknown, never retried', () => {
    const timeout = classify({ kind: 'timeout' }, first);
    const aborted = classify({ kind: 'aborted' }, first);
    expect(timeout).toMatchObject({ class: 'unknown', code: 'timeout' });
    expect(aborted).toMatchObject({ class: 'unknown', code: 'aborted' });
  });

  it('a network error before the write is transient, after it unknown', () => {
    const refused = { kind: 'network', errorCode: 'ECONNREFUSED', requestWritten: false } as const;
    const reset = { kind: 'network', errorCode: 'UND_ERR_SOCKET', requestWritten: true } as const;
    expect(classify(refused, first)).toMatchObject({ class: 'transient', code: 'ECONNREFUSED' });
    expect(classify(reset, first)).toMatchObject({ class: 'unknown', code: 'UND_ERR_SOCKET' });
  });
});

describe('CODE_TABLE and describeClass', () => {
  it('lists every class once, each with a description', () => {
    const classes = CODE_TABLE.map((row) => row.class);
    expect(new Set(classes).size).toBe(classes.length);
    for (const errorClass of classes) expect(describeClass(errorClass)).toMatch(/\w/);
  });

  it('gives no code two classes', () => {
    const seen = new Map<number, ErrorClass>();
    for (const row of CODE_TABLE) {
      for (const spec of row.codes) {
        const [from, to] = typeof spec === 'number' ? [spec, spec] : spec;
        for (let code = from; code <= to; code++) {
          expect(seen.get(code), `code ${code}`).toBeUndefined();
          seen.set(code, row.class);
        }
      }
    }
  });
});
