import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { usageError } from './errors.js';

/**
 * The whole environment wacamp reads, validated once at start. Flags override these where both
 * exist; no other module reads process.env.
 */
export interface Env {
  databaseUrl: string | undefined;
  apiUrl: string;
  apiVersion: string;
  accessToken: string | undefined;
  home: string;
  isRoot: boolean;
}

export const DEFAULTS = {
  apiUrl: 'https://graph.facebook.com',
  apiVersion: 'v23.0',
} as const;

const optional = (schema: z.ZodString) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const EnvSchema = z.object({
  DATABASE_URL: optional(
    z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://'),
  ),
  WHATSAPP_API_URL: optional(z.string().regex(/^https?:\/\/[^/\s]+/, 'must be an http(s) URL')),
  WHATSAPP_API_VERSION: optional(z.string().regex(/^v\d+\.\d+$/, 'must look like v23.0')),
  WHATSAPP_ACCESS_TOKEN: optional(z.string().min(8, 'is too short to be a token')),
  WACAMP_HOME: optional(z.string().min(1)),
});

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const parsed = EnvSchema.safeParse(source);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    // The value itself is never echoed: it may be a token or a password.
    throw usageError('bad_env', `${name} ${issue?.message ?? 'is invalid'}; fix or unset it`);
  }
  const e = parsed.data;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return {
    databaseUrl: e.DATABASE_URL,
    apiUrl: (e.WHATSAPP_API_URL ?? DEFAULTS.apiUrl).replace(/\/+$/, ''),
    apiVersion: e.WHATSAPP_API_VERSION ?? DEFAULTS.apiVersion,
    accessToken: e.WHATSAPP_ACCESS_TOKEN,
    home: path.resolve(e.WACAMP_HOME ?? defaultHome(isRoot)),
    isRoot,
  };
}

/**
 * Root's own home folder is not traversable by the `postgres` user that runs the embedded
 * server, so root keeps wacamp's data under /var/lib instead.
 */
function defaultHome(isRoot: boolean): string {
  return isRoot ? '/var/lib/wacamp' : path.join(os.homedir(), '.wacamp');
}
