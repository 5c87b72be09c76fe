import type { Verdict } from '../api/classify.js';
import { backoffMs } from '../api/backoff.js';
import type { Outcome } from '../db/recipients.js';

/** Why a run stops sending before the list is done. */
export type StopKind =
  | 'signal' | 'fatal' | 'pause' | 'lease_lost' | 'operator' | 'time_limit' | 'database';

export interface StopRequest {
  kind: StopKind;
  /** Stored on the campaign: error_budget, template_paused, quality, payload, throttle, ... */
  pauseReason?: string;
  code?: string;
  detail: string;
  pausedUntil?: Date;
}

export type Decision =
  | { kind: 'final'; outcome: Outcome; budgetCode: string | null }
  | { kind: 'retry'; outcome: Outcome; delayMs: number }
  | { kind: 'throttle'; outcome: Outcome; delayMs: number | undefined }
  | { kind: 'stop'; outcome: Outcome; stop: StopRequest };

export interface RowAttempt {
  id: string;
  /** Counted attempts already stored on the row. */
  storedAttempts: number;
  /** This run's counted attempts for the row, including the one just answered. */
  attempt: number;
  /** Waits for the pair rate so far (131056); bounded so one number cannot loop forever. */
  pairWaits: number;
}

export interface DecideOptions {
  maxAttempts: number;
  nowMs: number;
  random?: () => number;
}

// Meta pauses a template for 3 hours the first time it trips 132015.
const TEMPLATE_PAUSE_MS = 3 * 60 * 60 * 1000;
// Meta's pair rate is about one message per 6 s to the same user.
const PAIR_RATE_MIN_WAIT_MS = 6000;
const MAX_PAIR_WAITS = 10;

/**
 * What to do with one answered request: pure, so every branch is tested without a network.
 * A row that is given back (`pending`) or retried (`claimed`) was proven not accepted; only
 * `unknown` is recorded for answers that prove nothing.
 */
export function decide(v: Verdict, row: RowAttempt, o: DecideOptions): Decision {
  const attempts = row.storedAttempts + 1;
  if (v.class === 'sent') {
    return final(row, 'sent', attempts, null, null, v.messageId, v.messageStatus);
  }
  const giveBack: Outcome = { id: row.id, status: 'pending', attempts: row.storedAttempts };
  const wait: Outcome = {
    id: row.id, status: 'claimed', attempts, errorCode: v.code, errorMessage: v.message,
  };
  const detail = v.details ? `${v.message} — ${v.details}` : v.message;

  switch (v.class) {
    case 'fatal':
      return { kind: 'stop', outcome: giveBack, stop: { kind: 'fatal', code: v.code, detail } };
    case 'quality':
      return stop(giveBack, 'quality', v.code, detail);
    case 'template_paused':
      return stop(giveBack, 'template_paused', v.code, detail,
        new Date(o.nowMs + TEMPLATE_PAUSE_MS));
    case 'payload': {
      // The row that drew it fails (with Meta's details), so a resumed campaign moves on; the
      // pause keeps a campaign-wide fault from failing thousands of rows the same way.
      const failed = final(row, 'failed', attempts, v.code, detail);
      return stop(failed.outcome, 'payload', v.code, detail);
    }
    case 'campaign_throttle':
      // Throttle retries never count toward --max-attempts.
      return { kind: 'throttle', outcome: { ...wait, attempts: row.storedAttempts },
        delayMs: v.retryAfterMs };
    case 'recipient_throttle': {
      if (row.pairWaits >= MAX_PAIR_WAITS) {
        return final(row, 'failed', attempts, v.code, v.message);
      }
      const delay = v.retryAfterMs ??
        Math.max(PAIR_RATE_MIN_WAIT_MS, backoffMs(row.pairWaits + 1, {}, o.random));
      return { kind: 'retry', outcome: { ...wait, attempts: row.storedAttempts }, delayMs: delay };
    }
    case 'transient':
      if (row.attempt >= o.maxAttempts) {
        return final(row, 'failed', attempts, v.code, v.message);
      }
      return { kind: 'retry', outcome: wait,
        delayMs: v.retryAfterMs ?? backoffMs(row.attempt, {}, o.random) };
    case 'unknown':
      return final(row, 'unknown', attempts, v.code, v.message);
    case 'permanent':
      return final(row, 'failed', attempts, v.code, v.message);
  }
}

function final(
  row: RowAttempt, status: 'sent' | 'failed' | 'unknown', attempts: number,
  code: string | null, message: string | null, messageId?: string, messageStatus?: string | null,
): Decision {
  return {
    kind: 'final',
    outcome: {
      id: row.id, status, attempts, errorCode: code, errorMessage: message,
      messageId: messageId ?? null, messageStatus: messageStatus ?? null,
    },
    budgetCode: status === 'sent' ? null : code,
  };
}

function stop(
  outcome: Outcome, pauseReason: string, code: string, detail: string, pausedUntil?: Date,
): Decision {
  return {
    kind: 'stop', outcome,
    stop: { kind: 'pause', pauseReason, code, detail, ...(pausedUntil ? { pausedUntil } : {}) },
  };
}
