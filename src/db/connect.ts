import postgres from 'postgres';
import type { Sql } from 'postgres';

export type Db = Sql<Record<string, never>>;

export interface ConnectOptions {
  /** Most connections in this process's pool. */
  max?: number;
  /** Seconds to wait for a connection before giving up. */
  connectTimeoutS?: number;
  /** Called once per statement sent; the benchmark counts database cost with it. */
  onStatement?: () => void;
}

/**
 * One pool per process. Notices are dropped (migrations emit "already exists" notices), and
 * idle sockets do not keep a finished command alive.
 */
export function connect(url: string, options: ConnectOptions = {}): Db {
  const onStatement = options.onStatement;
  return postgres(url, {
    max: options.max ?? 4,
    onnotice: false,
    connect_timeout: options.connectTimeoutS ?? 10,
    connection: { application_name: 'wacamp' },
    ...(onStatement ? { debug: () => onStatement() } : {}),
  }) as Db;
}

/** A URL safe to print: the password is replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}
