/**
 * Case 1a, the ceiling: the same request bodies sent with undici at the same concurrency, no
 * database at all. Bodies are rendered before the clock starts.
 */
import { performance } from 'node:perf_hooks';
import { benchPhone } from '../lib/postgres.mjs';
import { bodyFor, config, eachLimited, finish, makeSender } from './common.mjs';

const bodies = Array.from({ length: config.n }, (_, k) => bodyFor(benchPhone(k + 1),
  [`Customer ${k + 1}`]));
const sender = makeSender(config.apiUrl, config.concurrency);
const began = performance.now();
let sent = 0;
await eachLimited(bodies, config.concurrency, async (body) => {
  if ((await sender.send(body)).ok) sent++;
});
const wallMs = performance.now() - began;
await sender.close();
finish({ sent, wallMs });
