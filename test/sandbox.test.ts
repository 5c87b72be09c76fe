import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WacampError } from '../src/errors.js';
import { ScenarioEngine, seededRandom } from '../src/sandbox/engine.js';
import {
  loadScenarioFile, parseScenario, startSandbox, type Sandbox, type SandboxOptions,
} from '../src/sandbox/server.js';
import type { TemplateSend } from '../src/sandbox/validate.js';

const TOKEN = 'sandbox-token';
const WAMID = /^wamid\.[A-Za-z0-9+/=]+$/;
const PHONE_ID = '106540352242922';

function send(to = '15550001111', params: unknown[] = [{ type: 'text', text: 'Ana' }]) {
  return {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    to,
    type: 'template',
    template: {
      name: 'order_update',
      language: { code: 'en_US' },
      components: [{ type: 'body', parameters: params }],
    },
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  text: string;
}

async function call(
  sb: Sandbox,
  path: string,
  opts: { method?: 'GET' | 'POST' | 'PUT'; body?: unknown; raw?: string; token?: string | null },
): Promise<Answer> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const res = await request(sb.url + path, {
    method: opts.method ?? 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, json, text };
}

const post = (sb: Sandbox, body: unknown, token?: string | null) =>
  call(sb, `/v21.0/${PHONE_ID}/messages`, { body, token });

const started: Sandbox[] = [];
async function sandbox(o: SandboxOptions = {}): Promise<Sandbox> {
  const sb = await startSandbox(o);
  started.push(sb);
  return sb;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((sb) => sb.close()));
});

describe('token check', () => {
  it('answers 401 with code 190 like Meta when the bearer is missing or wrong', async () => {
    const sb = await sandbox();
    for (const token of [null, 'wrong']) {
      const res = await post(sb, send(), token);
      expect(res.status).toBe(401);
      expect(res.json.error).toMatchObject({
        type: 'OAuthException',
        code: 190,
        error_data: { messaging_product: 'whatsapp' },
      });
      expect(res.json.error.message).toMatch(/^\(#190\) Invalid OAuth access token/);
      expect(res.json.error.error_data.details).toEqual(expect.any(String));
      expect(res.json.error.fbtrace_id).toMatch(/^\w{27}$/);
    }
    expect(sb.messages()).toEqual([]);
    expect(sb.requests()).toBe(2);
  });

  it('accepts any non-empty token when accessToken is null', async () => {
    const sb = await sandbox({ accessToken: null });
    expect((await post(sb, send(), 'anything')).status).toBe(200);
    expect((await post(sb, send(), null)).status).toBe(401);
  });

  it('serves the phone number profile behind the same check', async () => {
    const sb = await sandbox({ accessToken: 'secret' });
    const ok = await call(sb, `/v24.0/${PHONE_ID}`, { method: 'GET', token: 'secret' });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ id: PHONE_ID, quality_rating: 'GREEN' });
    expect(ok.json.verified_name).toEqual(expect.any(String));
    expect(ok.json.display_phone_number).toEqual(expect.any(String));
    const denied = await call(sb, `/v24.0/${PHONE_ID}`, { method: 'GET' });
    expect(denied.status).toBe(401);
    expect(sb.requests()).toBe(0);
  });
});

describe('accepted sends', () => {
  it('answers like Meta, records the message and its arrival time', async () => {
    const sb = await sandbox();
    const before = Date.now();
    const a = await post(sb, send('15550001111'));
    const b = await post(sb, send('15550002222'));
    const after = Date.now();

    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      messaging_product: 'whatsapp',
      contacts: [{ input: '15550001111', wa_id: '15550001111' }],
      messages: [{ id: expect.stringMatching(WAMID), message_status: 'accepted' }],
    });
    expect(b.json.messages[0].id).not.toBe(a.json.messages[0].id);

    const [first, second] = sb.messages();
    expect(first).toMatchObject({
      to: '15550001111', wamid: a.json.messages[0].id, template: 'order_update', language: 'en_US',
      components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }],
    });
    expect(second?.to).toBe('15550002222');
    const arrivals = sb.arrivals();
    expect(arrivals).toHaveLength(2);
    expect(arrivals[0]).toBeGreaterThanOrEqual(before - 1);
    expect(arrivals[1]).toBeGreaterThanOrEqual(arrivals[0]!);
    expect(arrivals[1]).toBeLessThanOrEqual(after + 1);
    expect(first?.at).toBe(arrivals[0]);
  });

  it('accepts any version from v17.0 to v24.0 and many requests at once', async () => {
    const sb = await sandbox();
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      call(sb, `/v${17 + (i % 8)}.0/${PHONE_ID}/messages`, { body: send(`1555000${1000 + i}`) })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(sb.messages().map((m) => m.wamid)).size).toBe(200);
    expect(sb.requests()).toBe(200);
  });

  it('keeps no messages in memory when keepInMemory is false', async () => {
    const sb = await sandbox({ keepInMemory: false });
    expect((await post(sb, send())).status).toBe(200);
    expect(sb.messages()).toEqual([]);
    expect(sb.requests()).toBe(1);
  });

  it('answers unknown paths with 404', async () => {
    const sb = await sandbox();
    expect((await call(sb, '/messages', { body: send() })).status).toBe(404);
    expect((await call(sb, `/v21.0/${PHONE_ID}/media`, { body: send() })).status).toBe(404);
  });
});

describe('body checks', () => {
  const named = (name: unknown, text = 'x') => ({ type: 'text', parameter_name: name, text });
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['no messaging_product', { ...send(), messaging_product: undefined }, 100, /messaging_product/],
    ['other messaging_product', { ...send(), messaging_product: 'sms' }, 100, /whatsapp/],
    ['to with a plus', send('+15550001111'), 100, /digits/],
    ['to missing', { ...send(), to: undefined }, 100, /to is required/],
    ['type text', { ...send(), type: 'text' }, 100, /template/],
    ['no template', { ...send(), template: undefined }, 131008, /template/],
    ['no name', { ...send(), template: { language: { code: 'en' } } }, 131008, /name/],
    ['no language', { ...send(), template: { name: 'a' } }, 131008, /language\.code/],
    ['components not array', { ...send(), template: { name: 'a', language: { code: 'en' },
      components: {} } }, 100, /components must be an array/],
    ['empty text', send(undefined, [{ type: 'text', text: '' }]), 131008, /parameters\[0\]\.text/],
    ['new-line', send(undefined, [{ type: 'text', text: 'a\nb' }]), 132018, /new-line/],
    ['tab', send(undefined, [{ type: 'text', text: 'a\tb' }]), 132018, /tab/],
    ['five spaces', send(undefined, [{ type: 'text', text: 'a     b' }]), 132018, /4 consecutive/],
    ['bad param type', send(undefined, [{ type: 'emoji' }]), 100, /emoji/],
    ['currency without amount', send(undefined, [{ type: 'currency',
      currency: { fallback_value: '$1', code: 'USD' } }]), 131008, /amount_1000/],
    ['mixed named', send(undefined, [named('a'), { type: 'text', text: 'y' }]), 100, /mix/],
    ['bad parameter_name', send(undefined, [named('First Name')]), 100, /parameter_name/],
    ['twice the same name', send(undefined, [named('a'), named('a')]), 100, /twice/],
  ];

  it.each(cases)('%s → code %i', async (_label, body, code, details) => {
    const sb = await sandbox();
    const res = await post(sb, body);
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe(code);
    expect(res.json.error.message).toMatch(new RegExp(`^\\(#${code}\\) `));
    expect(res.json.error.error_data.details).toMatch(details);
    expect(sb.messages()).toEqual([]);
  });

  it('rejects a body that is not JSON', async () => {
    const sb = await sandbox();
    const res = await call(sb, `/v21.0/${PHONE_ID}/messages`, { raw: '{"messaging_' });
    expect(res.json.error).toMatchObject({ code: 100 });
    expect(res.json.error.error_data.details).toMatch(/not valid JSON/);
  });

  it('accepts four spaces, named parameters and the other parameter types', async () => {
    const sb = await sandbox();
    const body = send(undefined, [
      named('customer_name', 'Ana    Lima'),
      { type: 'currency', parameter_name: 'total',
        currency: { fallback_value: '$5', code: 'USD', amount_1000: 5000 } },
      { type: 'date_time', parameter_name: 'when', date_time: { fallback_value: 'May 1' } },
    ]);
    body.template.components.push(
      { type: 'header', parameters: [{ type: 'image', image: { link: 'https://x.test/a.png' } }] },
      { type: 'button', sub_type: 'quick_reply', index: '0',
        parameters: [{ type: 'payload', payload: 'STOP' }] } as never,
    );
    expect((await post(sb, body)).status).toBe(200);
  });
});

describe('scenario switches over HTTP', () => {
  it('failRate with failCodes, retryAfter headers and 429 for throttles', async () => {
    const sb = await sandbox({ scenario: { failRate: 1, failCodes: [131026] } });
    const res = await post(sb, send());
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 131026, type: 'OAuthException' });
    expect(res.json.error.message).toBe('(#131026) Message Undeliverable');

    sb.setScenario({ failRate: 1, failCodes: [130429], retryAfter: { '130429': 7 } });
    const throttled = await post(sb, send());
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('7');

    sb.setScenario({ failRate: 0 });
    expect((await post(sb, send())).status).toBe(200);
    expect(sb.messages()).toHaveLength(1);
  });

  it('phoneCodes and nthCodes (counted over all requests)', async () => {
    const sb = await sandbox({ scenario: { phoneCodes: { '15550009999': 131050 } } });
    expect((await post(sb, send('15550009999'))).json.error.code).toBe(131050);
    expect((await post(sb, send('15550001111'))).status).toBe(200);

    sb.setScenario({ nthCodes: { '4': 131000 } });
    expect((await post(sb, send())).status).toBe(200);
    expect((await post(sb, send())).json.error.code).toBe(131000);
    expect((await post(sb, send())).status).toBe(200);
  });

  it('windows count from the first request under the scenario', async () => {
    let now = 1_000_000;
    const sb = await sandbox({
      now: () => now,
      scenario: { windows: [{ fromMs: 1000, toMs: 2000, code: 133004, retryAfter: 2.5 }] },
    });
    expect((await post(sb, send())).status).toBe(200);
    now += 1000;
    const inside = await post(sb, send());
    expect(inside.json.error.code).toBe(133004);
    expect(inside.headers['retry-after']).toBe('3');
    now += 1000;
    expect((await post(sb, send())).status).toBe(200);
    expect(sb.arrivals()).toEqual([1_000_000, 1_001_000, 1_002_000]);
  });

  it('throughputCap answers 130429 above N requests in the last second', async () => {
    let now = 5_000;
    const sb = await sandbox({ now: () => now, scenario: { throughputCap: 2 } });
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await post(sb, send())).status);
    now += 1000;
    codes.push((await post(sb, send())).status);
    expect(codes).toEqual([200, 200, 429, 200]);
  });

  it('pairRate answers 131056 to a second send to one number within 6 s', async () => {
    let now = 0;
    const sb = await sandbox({ now: () => now, scenario: { pairRate: true, pairRetryAfter: 6 } });
    expect((await post(sb, send('15550001111'))).status).toBe(200);
    now += 5999;
    const pair = await post(sb, send('15550001111'));
    expect(pair.status).toBe(400);
    expect(pair.json.error.code).toBe(131056);
    expect(pair.headers['retry-after']).toBe('6');
    expect((await post(sb, send('15550002222'))).status).toBe(200);
    now += 1;
    expect((await post(sb, send('15550001111'))).status).toBe(200);
  });

  it('holds the chosen requests before answering', async () => {
    const sb = await sandbox({ scenario: { holdMs: 300, holdFromRequest: 2, holdCount: 1 } });
    const timed = async () => {
      const start = performance.now();
      await post(sb, send());
      return performance.now() - start;
    };
    expect(await timed()).toBeLessThan(250);
    expect(await timed()).toBeGreaterThanOrEqual(295);
    expect(await timed()).toBeLessThan(250);
  });

  it('drops the connection after reading, recording the message only with dropAccepted',
    async () => {
      const sb = await sandbox({ scenario: { dropPhones: ['15550004444'] } });
      await expect(post(sb, send('15550004444'))).rejects.toThrow();
      expect((await post(sb, send('15550001111'))).status).toBe(200);
      expect(sb.messages().map((m) => m.to)).toEqual(['15550001111']);

      sb.setScenario({ dropAfterRead: 1, dropAccepted: true });
      await expect(post(sb, send('15550005555'))).rejects.toMatchObject({
        code: expect.stringMatching(/UND_ERR_SOCKET|ECONNRESET/),
      });
      expect(sb.messages().map((m) => m.to)).toEqual(['15550001111', '15550005555']);
    });

  it('heldShare and status5xxNoBody', async () => {
    const sb = await sandbox({ scenario: { heldShare: 1 } });
    const held = await post(sb, send());
    expect(held.json.messages[0].message_status).toBe('held_for_quality_assessment');

    sb.setScenario({ status5xxNoBody: 1 });
    const bad = await post(sb, send());
    expect(bad.status).toBe(502);
    expect(bad.headers['content-type']).toMatch(/text\/html/);
    expect(bad.text).toMatch(/<html>/);
    expect(sb.messages()).toHaveLength(1);
  });

  it('checks templates: unknown, named parameters, parameter count', async () => {
    const sb = await sandbox({ scenario: { templates: [
      { name: 'order_update', language: 'en_US', parameterNames: ['customer_name', 'order'] },
      { name: 'promo', language: 'es', bodyParams: 2 },
    ] } });
    const named = (n: string) => ({ type: 'text', parameter_name: n, text: 'x' });

    const unknown = await post(sb, { ...send(), template: { ...send().template, name: 'nope' } });
    expect(unknown.json.error.code).toBe(132001);
    const strange = await post(sb, send(undefined, [named('customer_name'), named('shoe')]));
    expect(strange.json.error.code).toBe(100);
    expect(strange.json.error.error_data.details).toMatch(/'shoe'/);
    const positional = await post(sb, send(undefined, [{ type: 'text', text: 'a' }]));
    expect(positional.json.error.code).toBe(100);
    expect((await post(sb, send(undefined, [named('order')]))).json.error.code).toBe(132000);
    const good = await post(sb, send(undefined, [named('order'), named('customer_name')]));
    expect(good.status).toBe(200);

    const promo = { ...send(), template: { name: 'promo', language: { code: 'es' },
      components: [{ type: 'body', parameters: [{ type: 'text', text: 'a' }] }] } };
    expect((await post(sb, promo)).json.error.code).toBe(132000);
  });

  it('replaces the scenario over PUT /_sandbox/scenario and reports stats', async () => {
    const sb = await sandbox();
    const put = (body: unknown) => call(sb, '/_sandbox/scenario', { method: 'PUT', body });
    expect((await put({ failRate: 1, failCodes: [131048] })).status).toBe(204);
    expect((await post(sb, send())).json.error.code).toBe(131048);
    const refused = await put({ failrate: 1 });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatch(/failrate/);

    expect((await put({})).status).toBe(204);
    await post(sb, send());
    const stats = await call(sb, '/_sandbox/stats', { method: 'GET' });
    expect(stats.json).toMatchObject({ requests: 2, accepted: 1, errors: { 131048: 1 } });
    const messages = await call(sb, '/_sandbox/messages', { method: 'GET' });
    expect(messages.json).toEqual(JSON.parse(JSON.stringify(sb.messages())));
  });
});

describe('log file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wacamp-sandbox-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lines = async (file: string) =>
    (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));

  it('holds one NDJSON line per accepted message, appended, complete after close', async () => {
    const logFile = join(dir, 'accepted.ndjson');
    await writeFile(logFile, '{"earlier":true}\n');
    const sb = await startSandbox({ logFile, scenario: { phoneCodes: { '15550009999': 131026 } } });
    await post(sb, send('15550001111'));
    await post(sb, send('15550009999'));
    await post(sb, send('15550002222'));
    await sb.close();
    await sb.close();

    const [earlier, ...accepted] = await lines(logFile);
    expect(earlier).toEqual({ earlier: true });
    expect(accepted).toEqual(JSON.parse(JSON.stringify(sb.messages())));
    expect(accepted.map((m) => m.to)).toEqual(['15550001111', '15550002222']);
    expect(Object.keys(accepted[0]).sort())
      .toEqual(['at', 'components', 'language', 'template', 'to', 'wamid']);
  });

  it('flushes while running, within about 200 ms', async () => {
    const logFile = join(dir, 'live.ndjson');
    const sb = await sandbox({ logFile, keepInMemory: false });
    await post(sb, send());
    await vi.waitFor(async () => expect(await lines(logFile)).toHaveLength(1),
      { timeout: 1000, interval: 50 });
  });

  it('close does not wait for a held request and still flushes', async () => {
    const logFile = join(dir, 'held.ndjson');
    const sb = await startSandbox({ logFile, scenario: { holdMs: 60_000, holdFromRequest: 2 } });
    await post(sb, send());
    const stalled = post(sb, send()).catch((err: unknown) => err);
    await vi.waitFor(() => expect(sb.requests()).toBe(2));
    await sb.close();
    expect(await stalled).toBeInstanceOf(Error);
    expect(await lines(logFile)).toHaveLength(2);
  });

  it('fails at start on a log path it cannot open', async () => {
    await expect(startSandbox({ logFile: join(dir, 'missing', 'x.ndjson') }))
      .rejects.toMatchObject({ code: 'SANDBOX_LOG', exitCode: 2 });
  });
});

describe('scenario parsing', () => {
  it('names the offending field', () => {
    const message = (json: unknown) => {
      try {
        parseScenario(json);
      } catch (err) {
        expect(err).toBeInstanceOf(WacampError);
        expect(err).toMatchObject({ code: 'SANDBOX_SCENARIO', exitCode: 2 });
        return (err as Error).message;
      }
      throw new Error('expected a usage error');
    };
    expect(message({ failRate: 2 })).toMatch(/scenario\.failRate/);
    expect(message({ failrate: 1 })).toMatch(/unknown field "failrate".*failRate/);
    expect(message({ phoneCodes: { '+1555': 1 } }))
      .toMatch(/phoneCodes\.\+1555: key must be digits/);
    expect(message({ nthCodes: { '0': 1 } })).toMatch(/nthCodes/);
    expect(message({ windows: [{ fromMs: 5, toMs: 1, code: 1 }] })).toMatch(/windows\.0\.toMs/);
    expect(message({ holdCount: 3 })).toMatch(/holdMs/);
    expect(message({ templates: [{ name: 'a' }] })).toMatch(/templates\.0\.language/);
  });

  it('reads throughputCap without a number as 80', () => {
    expect(parseScenario({ throughputCap: true }).throughputCap).toBe(80);
    expect(parseScenario({ throughputCap: null }).throughputCap).toBe(80);
    expect(parseScenario({ throughputCap: 1000 }).throughputCap).toBe(1000);
    expect(parseScenario({}).throughputCap).toBeUndefined();
  });

  it('loads a scenario file and reports unreadable or non-JSON files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wacamp-scenario-'));
    try {
      await writeFile(join(dir, 'ok.json'), '{"failRate":0.5,"failCodes":[131000]}');
      await writeFile(join(dir, 'bad.json'), '{failRate:');
      expect(await loadScenarioFile(join(dir, 'ok.json')))
        .toEqual({ failRate: 0.5, failCodes: [131000] });
      await expect(loadScenarioFile(join(dir, 'bad.json')))
        .rejects.toMatchObject({ code: 'SANDBOX_SCENARIO', message: /not JSON/ });
      await expect(loadScenarioFile(join(dir, 'none.json')))
        .rejects.toMatchObject({ code: 'SANDBOX_SCENARIO', message: /Cannot read/ });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad options before listening', async () => {
    await expect(startSandbox({ latencyMs: [50, 10] })).rejects.toMatchObject({ exitCode: 2 });
    await expect(startSandbox({ port: 70_000 })).rejects.toMatchObject({ exitCode: 2 });
    await expect(startSandbox({ scenario: { heldShare: -1 } })).rejects.toMatchObject({
      code: 'SANDBOX_SCENARIO',
    });
  });
});

describe('scenario engine (fake clock, no sockets)', () => {
  const message: TemplateSend = {
    to: '15550001111', template: 't', language: 'en', components: [],
  };

  it('counts requests in the trailing second', () => {
    const engine = new ScenarioEngine(parseScenario({}));
    expect([0, 100, 999, 1000, 1999.5].map((t) => engine.arrive(t).inLastSecond))
      .toEqual([1, 2, 3, 3, 2]);
  });

  it('holds requests holdFromRequest .. holdFromRequest + holdCount - 1', () => {
    const engine = new ScenarioEngine(
      parseScenario({ holdMs: 500, holdFromRequest: 3, holdCount: 2 }));
    const holds = [1, 2, 3, 4, 5].map((i) => engine.holdFor(engine.arrive(i)));
    expect(holds).toEqual([0, 0, 500, 500, 0]);
  });

  it('restarts the window clock when the scenario changes', () => {
    const engine = new ScenarioEngine(parseScenario({}));
    engine.arrive(0);
    engine.setScenario(parseScenario({ windows: [{ fromMs: 0, toMs: 100, code: 4 }] }));
    const first = engine.arrive(50_000);
    expect(engine.decide(first, message)).toMatchObject({ kind: 'error', code: 4 });
    expect(engine.decide(engine.arrive(50_100), message)).toMatchObject({ kind: 'accept' });
  });

  it('replays the same faults from the same seed', () => {
    const run = () => {
      const engine = new ScenarioEngine(parseScenario({ seed: 7, failRate: 0.5 }));
      return Array.from({ length: 40 }, (_, i) => engine.decide(engine.arrive(i), message).kind);
    };
    const kinds = run();
    expect(run()).toEqual(kinds);
    expect(kinds).toContain('error');
    expect(kinds).toContain('accept');
  });

  it('fails close to failRate over many requests', () => {
    const engine = new ScenarioEngine(parseScenario({ failRate: 0.3 }), seededRandom(1));
    const outcomes = Array.from({ length: 10_000 }, (_, i) =>
      engine.decide(engine.arrive(i), message));
    const errors = outcomes.filter((o) => o.kind === 'error').length;
    expect(errors).toBeGreaterThan(2700);
    expect(errors).toBeLessThan(3300);
  });
});
