/**
 * Decides what the sandbox answers to each send under the current scenario, and keeps the
 * little state that needs: arrival times, the scenario's own clock, the last accepted message
 * per recipient. Pure apart from that state: time and randomness come in from the caller, so
 * tests drive it with a fake clock instead of sleeping.
 */
import type { Scenario } from './scenario.js';
import { checkTemplate, type TemplateSend } from './validate.js';

export type Outcome =
  | { kind: 'accept'; held: boolean }
  | { kind: 'error'; code: number; details: string; retryAfter?: number }
  /** Read the request, then reset the socket; `record` logs the message as accepted first. */
  | { kind: 'drop'; record: boolean }
  | { kind: 'badGateway' };

/** One request as counted on arrival, before its body is read. */
export interface Ticket {
  /** 1-based number over every send request the sandbox received. */
  n: number;
  at: number;
  /** Requests that arrived in the second up to and including this one. */
  inLastSecond: number;
}

const PAIR_WINDOW_MS = 6_000;
const DEFAULT_FAIL_CODES = [131000];

/** Small seeded generator (mulberry32) so a scenario with `seed` replays the same faults. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class ScenarioEngine {
  readonly arrivals: number[] = [];
  private scenario: Scenario = {};
  private random: () => number = Math.random;
  /** Arrival time of the first request under the current scenario; windows count from here. */
  private epoch: number | undefined;
  /** Index into `arrivals` of the oldest arrival still inside the last second. */
  private secondStart = 0;
  /** Last accepted send per recipient, oldest first, pruned past the pair-rate window. */
  private lastAccepted = new Map<string, number>();

  constructor(scenario: Scenario, private readonly fixedRandom?: () => number) {
    this.setScenario(scenario);
  }

  setScenario(scenario: Scenario): void {
    this.scenario = scenario;
    this.epoch = undefined;
    this.random = this.fixedRandom ??
      (scenario.seed === undefined ? Math.random : seededRandom(scenario.seed));
  }

  arrive(at: number): Ticket {
    this.epoch ??= at;
    this.arrivals.push(at);
    while (this.arrivals[this.secondStart]! <= at - 1000) this.secondStart++;
    return { n: this.arrivals.length, at, inLastSecond: this.arrivals.length - this.secondStart };
  }

  /** Milliseconds to stall this request before answering (the `holdMs` scenario). */
  holdFor(ticket: Ticket): number {
    const { holdMs, holdCount, holdFromRequest = 1 } = this.scenario;
    if (!holdMs || ticket.n < holdFromRequest) return 0;
    if (holdCount !== undefined && ticket.n >= holdFromRequest + holdCount) return 0;
    return holdMs;
  }

  /**
   * The answer for a well-formed send. Rules are tried in this order and the first that fires
   * wins: templates, dropPhones / dropAfterRead, status5xxNoBody, nthCodes, phoneCodes, windows,
   * throughputCap, pairRate, failRate; otherwise the send is accepted (maybe held, heldShare).
   */
  decide(ticket: Ticket, send: TemplateSend): Outcome {
    const s = this.scenario;
    const templateFault = s.templates && checkTemplate(send, s.templates);
    if (templateFault) return { kind: 'error', ...templateFault };

    if (s.dropPhones?.includes(send.to) || this.chance(s.dropAfterRead)) {
      if (s.dropAccepted) this.noteAccepted(send.to, ticket.at);
      return { kind: 'drop', record: s.dropAccepted === true };
    }
    if (this.chance(s.status5xxNoBody)) return { kind: 'badGateway' };

    const injected = this.injectedCode(ticket, send.to);
    if (injected) return injected;

    if (this.chance(s.failRate)) {
      const codes = s.failCodes ?? DEFAULT_FAIL_CODES;
      const code = codes[Math.floor(this.random() * codes.length)] ?? codes[0]!;
      return this.error(code, 'failRate');
    }

    this.noteAccepted(send.to, ticket.at);
    return { kind: 'accept', held: this.chance(s.heldShare) };
  }

  private injectedCode(ticket: Ticket, to: string): Outcome | undefined {
    const s = this.scenario;
    const nth = s.nthCodes?.[ticket.n];
    if (nth !== undefined) return this.error(nth, `nthCodes[${ticket.n}]`);
    const byPhone = s.phoneCodes?.[to];
    if (byPhone !== undefined) return this.error(byPhone, 'phoneCodes');

    const sinceEpoch = ticket.at - (this.epoch ?? ticket.at);
    const window = s.windows?.find((w) => sinceEpoch >= w.fromMs && sinceEpoch < w.toMs);
    if (window) return this.error(window.code, 'windows', window.retryAfter);

    if (s.throughputCap !== undefined && ticket.inLastSecond > s.throughputCap) {
      return this.error(130429, `throughputCap ${s.throughputCap}/s`);
    }
    const last = s.pairRate ? this.lastAccepted.get(to) : undefined;
    if (last !== undefined && ticket.at - last < PAIR_WINDOW_MS) {
      return this.error(131056, 'pairRate', s.pairRetryAfter);
    }
    return undefined;
  }

  private error(code: number, rule: string, retryAfter?: number): Outcome {
    return {
      kind: 'error',
      code,
      details: `Injected by the sandbox scenario (${rule})`,
      retryAfter: retryAfter ?? this.scenario.retryAfter?.[code],
    };
  }

  private chance(share: number | undefined): boolean {
    return share !== undefined && share > 0 && this.random() < share;
  }

  private noteAccepted(to: string, at: number): void {
    if (!this.scenario.pairRate) return;
    // Re-insert so the map stays ordered by time and the pruning below can stop early.
    this.lastAccepted.delete(to);
    this.lastAccepted.set(to, at);
    for (const [phone, time] of this.lastAccepted) {
      if (at - time < PAIR_WINDOW_MS) break;
      this.lastAccepted.delete(phone);
    }
  }
}
