import { EventEmitter, setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { ResponseFacts } from '../api/client.js';
import { classify } from '../api/classify.js';
import type { ClaimedRow, CycleResult, Outcome } from '../db/recipients.js';
import { ErrorBudget } from './budget.js';
import { decide, type Decision, type StopRequest } from './decide.js';
import type { StartPlanner } from './planner.js';
import { RunCounters } from './counters.js';
import { StartQueue } from './start-queue.js';

/**
 * The sending loop. It is longer than our usual module because slot accounting — a slot is held
 * from choice to committed outcome — has to live in one place to stay provably right.
 * It knows no SQL: it claims rows, commits outcomes and marks the next group
 * `sending` through `EngineStore`, one statement at a time (group commit), and hands requests to
 * `send`. A worker slot is held from the moment a row is chosen until its outcome is committed,
 * so rows in `sending` never outnumber the workers.
 */
export interface EngineStore {
  /** Up to `limit` sendable rows with ids above `afterId` (the run's keyset cursor). */
  claim(limit: number, afterId: string): Promise<ClaimedRow[]>;
  cycle(outcomes: Outcome[], mark: string[]): Promise<CycleResult>;
  /** Renews the lease and reads the campaign's status (another writer may have paused it). */
  heartbeat(): Promise<{ live: boolean; campaignStatus: string | undefined }>;
}

export type Prepared = { body: object } | { error: { code: string; message: string } };

export interface EngineOptions {
  workers: number;
  maxAttempts: number;
  drainTimeoutMs: number;
  leaseMs: number;
  maxErrorRate: number;
  maxThrottleMs: number;
  claimBatch?: number;
  random?: () => number;
}

export interface EngineDeps {
  store: EngineStore;
  planner: StartPlanner;
  prepare: (row: ClaimedRow) => Prepared;
  send: (body: object, signal: AbortSignal) => Promise<ResponseFacts>;
  /** Told of every request start, with its performance.now() time (benchmark traces). */
  onStart?: (t: number) => void;
}

export interface EngineResult {
  /** Null when the list ran out; otherwise why the run stopped early. */
  stop: StopRequest | null;
  counts: Record<string, number>;
  /** Outcomes that could not be committed (database gone or lease lost): for the journal. */
  unwritten: Outcome[];
}

interface Row { claimed: ClaimedRow; body: object; attempt: number; pairWaits: number }
interface Pending { outcome: Outcome; slot: boolean; retry?: { row: Row; at: number } }

// How far ahead of its start a row may be marked `sending`: small, so a kill leaves few rows
// that were marked but never requested.
const PLAN_HORIZON_MS = 50;
// Heartbeats also poll the campaign's status, the backstop for writers that do not NOTIFY:
// an operator's pause must be obeyed within 2 s.
const HEARTBEAT_MAX_MS = 1000;
const DB_RETRY_MAX_MS = 2000;

export class Engine extends EventEmitter {
  readonly counters = new RunCounters();
  private readonly buffer: Row[] = [];
  private readonly retries: { row: Row; at: number }[] = [];
  private readonly startQueue: StartQueue<Row>;
  private pending: Pending[] = [];
  private slots = 0;
  private inFlight = 0;
  private exhausted = false;
  // Rows given back below the cursor are picked up by the run's next pass (run-send.ts).
  private cursor = '0';
  private stopReq: StopRequest | null = null;
  private forced = false;
  private readonly abort = new AbortController();
  private lastLiveAt = performance.now();
  private wakeUp: (() => void) | null = null;
  private readonly budget: ErrorBudget;
  private readonly claimBatch: number;

  constructor(private readonly o: EngineOptions, private readonly d: EngineDeps) {
    super();
    this.budget = new ErrorBudget(o.maxErrorRate);
    this.claimBatch = o.claimBatch ?? Math.max(200, o.workers * 4);
    this.startQueue = new StartQueue(d.planner, PLAN_HORIZON_MS, (row, now) => this.start(row, now));
    // One drain signal is shared by every request in flight: one listener each.
    setMaxListeners(0, this.abort.signal);
  }

  get stopping(): StopRequest | null {
    return this.stopReq;
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  /** The live rate: starts in the last second (it shows a throttle cut as it happens). */
  observedRate(): number {
    return this.d.planner.observedRate(performance.now());
  }

  get throttled(): boolean {
    return this.d.planner.throttledNow;
  }

  /** First call stops intake and drains; a later call with `force` aborts in-flight at once. */
  stop(req: StopRequest, force = false): void {
    if (!this.stopReq) this.stopReq = req;
    if (force && !this.forced) {
      this.forced = true;
      this.abort.abort();
    }
    this.wake();
  }

  async run(): Promise<EngineResult> {
    const beat = setInterval(() => void this.beat(), Math.min(HEARTBEAT_MAX_MS, this.o.leaseMs / 6));
    let drainTimer: NodeJS.Timeout | null = null;
    let dbFailures = 0;

    try {
      for (;;) {
        const now = performance.now();
        if (now - this.lastLiveAt > this.o.leaseMs) this.loseLease();
        this.d.planner.tick(now);
        if (this.stopReq?.kind === 'lease_lost') {
          // Nothing can be written any more; wait for answers so the journal gets them.
          if (this.inFlight === 0) break;
          await this.sleep(1000);
          continue;
        }
        if (this.stopReq) {
          this.releaseUnstarted();
          drainTimer ??= setTimeout(() => this.stop(this.stopReq!, true), this.o.drainTimeoutMs);
        }
        if (!this.stopReq && this.buffer.length < this.o.workers && !this.exhausted) {
          await this.refill();
        }
        const chosen = this.stopReq ? [] : this.choose(now);
        if (chosen.length > 0 || this.pending.length > 0) {
          const ok = await this.commit(chosen);
          dbFailures = ok ? 0 : dbFailures + 1;
          if (!ok) await this.sleep(Math.min(DB_RETRY_MAX_MS, 100 * 2 ** dbFailures));
          continue;
        }
        if (this.finished()) break;
        await this.idle(now);
      }
    } finally {
      clearInterval(beat);
      if (drainTimer) clearTimeout(drainTimer);
      this.startQueue.cancelTimer();
    }
    return {
      stop: this.stopReq,
      counts: this.counters.snapshot(),
      unwritten: this.pending.map((p) => p.outcome),
    };
  }

  /** True when nothing is left to do: the list ran out, or a stop has fully drained. */
  private finished(): boolean {
    const quiet = this.inFlight === 0 && this.startQueue.length === 0 && this.pending.length === 0;
    if (!quiet) return false;
    if (this.stopReq) return this.buffer.length === 0 && this.retries.length === 0;
    return this.exhausted && this.buffer.length === 0 && this.retries.length === 0;
  }

  private async refill(): Promise<void> {
    try {
      const rows = await this.guarded(this.d.store.claim(this.claimBatch, this.cursor));
      if (rows.length < this.claimBatch) this.exhausted = true;
      const last = rows[rows.length - 1];
      if (last) this.cursor = last.id;
      for (const claimed of rows) this.admitRow(claimed);
    } catch (err) {
      this.emit('db_error', err);
    }
  }

  /** Renders a claimed row; a row whose data cannot be rendered fails locally, unsent. */
  private admitRow(claimed: ClaimedRow): void {
    const prepared = this.d.prepare(claimed);
    if ('error' in prepared) {
      this.pending.push({
        slot: false,
        outcome: {
          id: claimed.id, status: 'failed', attempts: claimed.attempts,
          errorCode: prepared.error.code, errorMessage: prepared.error.message,
        },
      });
      this.counters.add('failed');
      return;
    }
    this.buffer.push({ claimed, body: prepared.body, attempt: 0, pairWaits: 0 });
  }

  /** Rows for the free slots that the rate allows within the horizon. */
  private choose(now: number): Row[] {
    const free = this.o.workers - this.slots;
    if (free <= 0) return [];
    this.retries.sort((a, b) => a.at - b.at);
    const due = this.retries.filter((r) => r.at <= now).length;
    const wanted = this.d.planner.capacity(Math.min(free, due + this.buffer.length), now,
      PLAN_HORIZON_MS);
    const chosen: Row[] = [];
    for (let i = 0; i < wanted; i++) {
      const next = this.retries[0] && this.retries[0].at <= now ? this.retries.shift() : undefined;
      const row = next?.row ?? this.buffer.shift();
      if (!row) break;
      chosen.push(row);
    }
    this.slots += chosen.length;
    return chosen;
  }

  /**
   * One group-commit statement: outcomes so far, plus `sending` marks for the chosen rows.
   * Start times are planned only once the marks are committed, so a slow round trip never
   * turns into a burst of overdue starts.
   */
  private async commit(chosen: Row[]): Promise<boolean> {
    const batch = this.pending;
    this.pending = [];
    const askedAt = performance.now();
    let result: CycleResult | null;
    try {
      result = await this.guarded(this.d.store.cycle(
        batch.map((p) => p.outcome), chosen.map((row) => row.claimed.id)));
    } catch (err) {
      this.emit('db_error', err);
      result = null;
    }
    if (!result || !result.live) {
      this.pending = batch.concat(this.pending);
      this.slots -= chosen.length;
      this.buffer.unshift(...chosen);
      if (result && !result.live) this.loseLease();
      return result !== null;
    }
    this.lastLiveAt = askedAt;
    for (const p of batch) {
      if (p.slot) this.slots--;
      if (p.retry) this.retries.push(p.retry);
    }
    const marked = new Set(result.marked);
    const rows = chosen.filter((row) => marked.has(row.claimed.id));
    this.slots -= chosen.length - rows.length;
    const now = performance.now();
    const times = this.d.planner.plan(rows.length, now, PLAN_HORIZON_MS);
    this.startQueue.add(rows.map((item, i) => ({ item, at: times[i] })));
    return true;
  }

  /**
   * A database call raced against the lease: when the network goes silent a statement may
   * never settle, and the run must still stop once its lease is gone.
   */
  private guarded<T>(work: Promise<T>): Promise<T> {
    const left = this.lastLiveAt + this.o.leaseMs - performance.now();
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.loseLease();
        reject(new Error('no answer from the database within the lease'));
      }, Math.max(0, left) + 10);
    });
    return Promise.race([work, expiry]).finally(() => clearTimeout(timer));
  }

  /** Starts one request; false (and nothing sent) once the lease is gone. */
  private start(row: Row, now: number): boolean {
    if (now - this.lastLiveAt >= this.o.leaseMs || this.stopReq?.kind === 'lease_lost') {
      this.pending.push({ slot: true, outcome: this.giveBack(row) });
      // After the queue has put its remaining items back, so loseLease drains them all.
      queueMicrotask(() => this.loseLease());
      return false;
    }
    row.attempt++;
    this.inFlight++;
    this.counters.add('requests');
    this.d.onStart?.(now);
    this.d.send(row.body, this.abort.signal).then(
      (facts) => this.answered(row, facts),
      (err: unknown) => this.answered(row, { kind: 'network', errorCode: String(err),
        requestWritten: true }),
    );
    return true;
  }

  private answered(row: Row, facts: ResponseFacts): void {
    this.inFlight--;
    const nowMs = Date.now();
    const verdict = classify(facts, { attempt: row.attempt, nowMs });
    const decision = decide(verdict, {
      id: row.claimed.id, storedAttempts: row.claimed.attempts, attempt: row.attempt,
      pairWaits: row.pairWaits,
    }, { maxAttempts: this.o.maxAttempts, nowMs, random: this.o.random });
    this.apply(row, decision);
    this.wake();
  }

  private apply(row: Row, d: Decision): void {
    const now = performance.now();
    switch (d.kind) {
      case 'final': {
        this.pending.push({ outcome: d.outcome, slot: true });
        this.counters.add(d.outcome.status);
        if (d.outcome.messageStatus) this.counters.add(`message_status:${d.outcome.messageStatus}`);
        const over = this.budget.record(d.budgetCode);
        if (over) this.stop(this.budgetStop(over));
        return;
      }
      case 'retry':
        row.claimed = { ...row.claimed, attempts: d.outcome.attempts };
        if (d.outcome.errorCode === '131056') row.pairWaits++;
        this.counters.add('retried');
        this.pending.push({ outcome: d.outcome, slot: true, retry: { row, at: now + d.delayMs } });
        return;
      case 'throttle': {
        // The request is retried at the pace the cut allows; it does not count as an attempt.
        row.attempt--;
        this.counters.add('throttled');
        this.d.planner.throttled(now, d.delayMs);
        const stop = this.d.planner.throttleStop(now, this.o.maxThrottleMs);
        if (stop) this.stop(stop);
        this.pending.push({ outcome: d.outcome, slot: true, retry: { row, at: now } });
        return;
      }
      case 'stop': {
        // Only the first payload error fails its row; answers still in flight go back.
        const repeat = this.stopReq?.pauseReason === 'payload' && d.stop.pauseReason === 'payload';
        const outcome = repeat ? this.giveBack(row) : d.outcome;
        this.pending.push({ outcome, slot: true });
        if (outcome.status !== 'pending') this.counters.add(outcome.status);
        this.stop(d.stop);
        return;
      }
    }
  }

  private budgetStop(code: string): StopRequest {
    const share = Math.round(this.budget.share(code) * 100);
    return {
      kind: 'pause', pauseReason: 'error_budget', code,
      detail: `${share}% of the last sends failed with code ${code}`,
    };
  }

  /** On a stop: rows not yet requested go back to `pending`, still owned until committed. */
  private releaseUnstarted(): void {
    for (const row of this.startQueue.drain()) {
      this.pending.push({ slot: true, outcome: this.giveBack(row) });
    }
    if (this.stopReq?.kind === 'lease_lost') return;
    for (const row of this.buffer.splice(0)) {
      this.pending.push({ slot: false, outcome: this.giveBack(row) });
    }
    for (const r of this.retries.splice(0)) {
      this.pending.push({ slot: false, outcome: this.giveBack(r.row) });
    }
  }

  private giveBack(row: Row): Outcome {
    return { id: row.claimed.id, status: 'pending', attempts: row.claimed.attempts };
  }

  /**
   * The lease is gone: send nothing more and write nothing (the writes would be fenced). What
   * was never requested is handed to the journal as given back, so the next command returns it
   * to `pending` instead of recovery calling the `sending` ones unknown.
   */
  private loseLease(): void {
    if (this.stopReq?.kind === 'lease_lost') return;
    this.stopReq = { kind: 'lease_lost', detail: 'the run could not renew its lease in time' };
    const unstarted = [...this.startQueue.drain(), ...this.buffer.splice(0),
      ...this.retries.splice(0).map((r) => r.row)];
    for (const row of unstarted) this.pending.push({ slot: false, outcome: this.giveBack(row) });
    this.abortAfterDrain();
  }

  private abortAfterDrain(): void {
    setTimeout(() => this.stop(this.stopReq!, true), this.o.drainTimeoutMs).unref();
  }

  private async beat(): Promise<void> {
    const askedAt = performance.now();
    try {
      const beat = await this.d.store.heartbeat();
      if (!beat.live) this.loseLease();
      else {
        this.lastLiveAt = askedAt;
        if (beat.campaignStatus !== 'active' && !this.stopReq) {
          this.stop({ kind: 'operator', detail: `campaign is now ${beat.campaignStatus ?? 'gone'}` });
        }
      }
    } catch (err) {
      this.emit('db_error', err);
    }
    this.d.planner.tick(performance.now());
    this.wake();
  }

  /** Reads the campaign's status now (a NOTIFY said it changed) instead of at the next beat. */
  checkStatusNow(): void {
    void this.beat();
  }

  /** Wakes the loop (the planner calls it when reserved start slots arrive). */
  nudge(): void {
    this.wake();
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private idle(now: number): Promise<void> {
    let ms = 1000;
    const firstRetry = this.retries.reduce((m, r) => Math.min(m, r.at), Infinity);
    if (firstRetry < Infinity) ms = Math.min(ms, Math.max(1, firstRetry - now));
    if (this.buffer.length > 0 && this.slots < this.o.workers) {
      ms = Math.min(ms, Math.max(1, this.d.planner.nextFree(now) - PLAN_HORIZON_MS - now));
    }
    return this.sleep(ms);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeUp = null; resolve(); }, ms);
      this.wakeUp = () => { clearTimeout(t); resolve(); };
    });
  }
}
