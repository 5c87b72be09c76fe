/**
 * What the baselines share with each other and with wacamp: the template, the request body
 * (rendered by wacamp's own built code, so every contender sends the same bytes), an undici Pool
 * configured like wacamp's client, and the start-time trace.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { parseTemplate } from '../../../dist/template/definition.js';
import { renderComponents } from '../../../dist/template/render.js';
import { messageBody } from '../../../dist/send/run-send.js';
import { normalizePhone } from '../../../dist/phone.js';
import { PHONE_NUMBER_ID, TEMPLATE, TOKEN } from '../lib/postgres.mjs';

export const config = JSON.parse(process.argv[2] ?? '{}');

const spec = parseTemplate(TEMPLATE.name, TEMPLATE.language, TEMPLATE.components);

/** The Cloud API body wacamp would send for this stored phone and variables. */
export function bodyFor(phone, variables) {
  const p = normalizePhone(phone);
  const r = renderComponents(spec, variables);
  if (!p.ok || !r.ok) throw new Error(`bench row does not render: ${phone}`);
  return messageBody(p.e164, spec, r.components);
}

/** Starts are recorded as epoch ms, like wacamp's --trace-starts. */
export const starts = [];
const stamp = () => performance.timeOrigin + performance.now();

export function makeSender(apiUrl, connections) {
  const url = new URL(apiUrl);
  const pool = new Pool(url.origin, {
    connections, pipelining: 1, connectTimeout: 10_000, headersTimeout: 20_000,
    bodyTimeout: 20_000,
  });
  const path = `${url.pathname.replace(/\/+$/, '')}/v23.0/${PHONE_NUMBER_ID}/messages`;
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  return {
    /** POSTs the body; resolves with the wamid, or an error code the caller may store. */
    async send(body) {
      starts.push(stamp());
      const res = await pool.request({ method: 'POST', path, headers, body: JSON.stringify(body) });
      const answer = JSON.parse(await res.body.text());
      const wamid = answer?.messages?.[0]?.id;
      return wamid ? { ok: true, wamid } : { ok: false, code: String(answer?.error?.code) };
    },
    close: () => pool.close(),
  };
}

/** Runs fn over items with at most `limit` in flight, in order of the items. */
export async function eachLimited(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Writes the trace and the one JSON line the bench reads. */
export function finish(result) {
  writeFileSync(config.trace, JSON.stringify(starts));
  process.stdout.write(JSON.stringify(result) + '\n');
}
