/**
 * The sandbox's fault scenario: which requests fail, stall, reset or get throttled. Validated
 * with zod at the edge so a typo in a scenario file is reported with the field's name instead
 * of silently turning a fault off.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { usageError } from '../errors.js';

/** The throughput cap when `throughputCap` is given without a number: Meta's default tier. */
export const DEFAULT_THROUGHPUT_CAP = 80;

const share = z.number().min(0).max(1);
const code = z.number().int().nonnegative();
const seconds = z.number().nonnegative();
const digits = z.string().regex(/^\d{1,20}$/, 'must be digits only (E.164 without +)');
const positiveIntKey = z.string().regex(/^[1-9]\d*$/, 'must be a request number from 1 up');

const windowSchema = z
  .strictObject({
    fromMs: z.number().nonnegative(),
    toMs: z.number().nonnegative(),
    code,
    retryAfter: seconds.optional(),
  })
  .refine((w) => w.toMs >= w.fromMs, { message: 'toMs must not be before fromMs', path: ['toMs'] });

const templateSchema = z.strictObject({
  name: z.string().min(1),
  language: z.string().min(1),
  parameterNames: z.array(z.string().regex(/^[a-z0-9_]+$/, 'lowercase, digits, _')).optional(),
  bodyParams: z.number().int().nonnegative().optional(),
});

const scenarioSchema = z
  .strictObject({
    /** Seed for the sandbox's random choices, so a scenario file replays the same faults. */
    seed: z.number().int().optional(),
    failRate: share.optional(),
    /** Codes picked at random for `failRate` failures; default [131000]. */
    failCodes: z.array(code).min(1).optional(),
    phoneCodes: z.record(digits, code).optional(),
    /** Counted over every POST …/messages request the sandbox received, 1-based. */
    nthCodes: z.record(positiveIntKey, code).optional(),
    /** Milliseconds relative to the first request after the scenario took effect. */
    windows: z.array(windowSchema).optional(),
    holdMs: z.number().nonnegative().optional(),
    holdCount: z.number().int().positive().optional(),
    holdFromRequest: z.number().int().positive().optional(),
    dropAfterRead: share.optional(),
    dropPhones: z.array(digits).optional(),
    /** Record a dropped message as accepted: the "sent, but the answer was lost" case. */
    dropAccepted: z.boolean().optional(),
    /** Requests per second; `true` or `null` (the key without a number) means 80. */
    throughputCap: z
      .union([z.number().int().positive(), z.literal(true), z.null()])
      .transform((v) => (v === true || v === null ? DEFAULT_THROUGHPUT_CAP : v))
      .optional(),
    pairRate: z.boolean().optional(),
    pairRetryAfter: seconds.optional(),
    retryAfter: z.record(z.string().regex(/^\d+$/, 'must be an error code'), seconds).optional(),
    templates: z.array(templateSchema).optional(),
    heldShare: share.optional(),
    status5xxNoBody: share.optional(),
  })
  .refine((s) => s.holdMs !== undefined || (s.holdCount ?? s.holdFromRequest) === undefined, {
    message: 'holdCount and holdFromRequest need holdMs (how long to hold)',
    path: ['holdMs'],
  });

export type Scenario = z.output<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type ScenarioWindow = z.output<typeof windowSchema>;
export type TemplateSpec = z.output<typeof templateSchema>;

/** Validates a scenario; the error names the first offending field and what was expected. */
export function parseScenario(json: unknown): Scenario {
  const parsed = scenarioSchema.safeParse(json ?? {});
  if (parsed.success) return parsed.data;

  const issue = parsed.error.issues[0];
  const where = ['scenario', ...(issue?.path ?? []).map(String)].join('.');
  return usageThrow(`Invalid sandbox scenario: ${where}: ${describeIssue(issue)}`, parsed.error);
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (issue?.code === 'unrecognized_keys') {
    const known = Object.keys(scenarioSchema.shape).join(', ');
    return `unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')} (known: ${known})`;
  }
  // A bad record key (a phone number, a request number) carries its reason one level down.
  if (issue?.code === 'invalid_key') return `key ${issue.issues[0]?.message ?? 'is invalid'}`;
  return issue?.message ?? 'invalid';
}

function usageThrow(message: string, cause: unknown): never {
  throw usageError('SANDBOX_SCENARIO', message, cause);
}

export async function loadScenarioFile(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return usageThrow(`Cannot read sandbox scenario file ${path}: ${(err as Error).message}`, err);
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return usageThrow(`Sandbox scenario file ${path} is not JSON: ${(err as Error).message}`, err);
  }
  return parseScenario(json);
}
