/**
 * One place for the errors wacamp throws. Each carries a stable `code` a caller can branch on
 * and the process exit code it maps to; only the CLI entry point turns them into an exit.
 */

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  liveRun: 3,
  strict: 4,
  sigint: 130,
  sigterm: 143,
} as const;

/** Precedence when several outcomes apply: 2 > 1 > 130/143 > 3 > 4 > 0. */
const RANK: Record<number, number> = { 2: 6, 1: 5, 130: 4, 143: 4, 3: 2, 4: 1, 0: 0 };

export function worstExit(codes: readonly number[]): number {
  let worst = 0;
  for (const code of codes) if ((RANK[code] ?? 5) > (RANK[worst] ?? 0)) worst = code;
  return worst;
}

export class WacampError extends Error {
  readonly code: string;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WacampError';
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT.error;
  }
}

/** A usage or validation fault: the operator must change the command or the data (exit 2). */
export function usageError(code: string, message: string, cause?: unknown): WacampError {
  return new WacampError(code, message, { exitCode: EXIT.usage, cause });
}
