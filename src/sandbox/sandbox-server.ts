/**
 * The sandbox's node:http handlers: routes a request, checks the token and the body, asks the
 * scenario engine for the outcome and writes Meta's answer, after any latency or hold.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { usageError } from '../errors.js';
import type { ScenarioEngine, Ticket } from './engine.js';
import {
  errorReply, jsonReply, MAX_BODY_BYTES, readBody, writeReply, type Reply,
} from './http-io.js';
import type { MessageLog } from './message-log.js';
import { BAD_GATEWAY_HTML } from './meta-errors.js';
import { parseScenario, type ScenarioInput } from './scenario.js';
import type { Sandbox, SandboxMessage, SandboxOptions } from './server.js';
import { isFault, validateSend, type Fault, type TemplateSend } from './validate.js';

/** `/{version}/{phone_number_id}` with an optional `/messages`; the version like v24.0. */
const ROUTE = /^\/v\d{1,3}\.\d{1,2}\/(\d{1,20})(\/messages)?\/?(?:\?.*)?$/;
const DEFAULT_TOKEN = 'sandbox-token';

function monotonicNow(): number {
  return performance.timeOrigin + performance.now();
}

export class SandboxServer implements Sandbox {
  url = '';
  port = 0;
  private readonly server: Server;
  private readonly accepted: SandboxMessage[] = [];
  private readonly now: () => number;
  private readonly random: () => number;
  /** Answers waiting out latency or a hold; close() cancels them. */
  private readonly stalled = new Set<NodeJS.Timeout>();
  /** Unique per sandbox, so wamids never repeat across sandboxes in one process. */
  private readonly wamidPrefix = randomBytes(6).toString('hex');
  private readonly stats = {
    accepted: 0, held: 0, dropped: 0, badGateway: 0, clientAborts: 0,
    errors: {} as Record<number, number>,
  };
  private closing: Promise<void> | undefined;

  constructor(
    private readonly o: SandboxOptions,
    private readonly engine: ScenarioEngine,
    private readonly log: MessageLog | undefined,
  ) {
    this.now = o.now ?? monotonicNow;
    this.random = o.random ?? Math.random;
    this.server = createServer((req, res) => this.route(req, res));
    // Longer than undici's 4 s default, so the client, not the server, retires idle sockets.
    this.server.keepAliveTimeout = 10_000;
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err) => {
        reject(usageError('SANDBOX_LISTEN', `Sandbox cannot listen on ${host}:${port}`, err));
      });
      this.server.listen(port, host, () => {
        this.port = (this.server.address() as AddressInfo).port;
        this.url = `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
        resolve();
      });
    });
  }

  messages(): SandboxMessage[] {
    return this.accepted.slice();
  }

  requests(): number {
    return this.engine.arrivals.length;
  }

  arrivals(): number[] {
    return this.engine.arrivals.slice();
  }

  setScenario(s: ScenarioInput): void {
    this.engine.setScenario(parseScenario(s));
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    for (const timer of this.stalled) clearTimeout(timer);
    this.stalled.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await this.log?.close();
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    if (url.startsWith('/_sandbox/')) return this.control(req, res, url);

    const match = ROUTE.exec(url);
    if (match && req.method === 'POST' && match[2]) return this.onSend(req, res);
    if (match && req.method === 'GET' && !match[2]) return this.onPhoneNumber(req, res, match[1]!);
    req.resume();
    const details = `Unsupported request: ${req.method ?? ''} ${url.split('?')[0] ?? ''}`;
    writeReply(res, { ...this.fail({ code: 100, details }), status: 404 });
  }

  private onSend(req: IncomingMessage, res: ServerResponse): void {
    const ticket = this.engine.arrive(this.now());
    const authFault = this.checkToken(req);
    req.on('error', () => {
      // The client hung up mid-body: nothing is left to answer, only to count.
      this.stats.clientAborts++;
    });
    readBody(req, (text) => {
      const reply = authFault ? this.fail(authFault) : this.answerSend(ticket, text);
      this.after(this.latency() + this.engine.holdFor(ticket), () => {
        if (reply === 'drop') req.socket.destroy();
        else writeReply(res, reply);
      });
    });
  }

  private answerSend(ticket: Ticket, text: string | undefined): Reply | 'drop' {
    const send = parseSend(text);
    if (isFault(send)) return this.fail(send);

    const outcome = this.engine.decide(ticket, send);
    switch (outcome.kind) {
      case 'error':
        return this.fail(outcome, outcome.retryAfter);
      case 'badGateway':
        this.stats.badGateway++;
        return { status: 502, body: BAD_GATEWAY_HTML, headers: { 'content-type': 'text/html' } };
      case 'drop':
        this.stats.dropped++;
        if (outcome.record) this.record(ticket, send);
        return 'drop';
      case 'accept': {
        const wamid = this.record(ticket, send);
        if (outcome.held) this.stats.held++;
        return jsonReply(200, {
          messaging_product: 'whatsapp',
          contacts: [{ input: send.to, wa_id: send.to }],
          messages: [{ id: wamid, message_status: outcome.held ? HELD : 'accepted' }],
        });
      }
    }
  }

  private record(ticket: Ticket, send: TemplateSend): string {
    this.stats.accepted++;
    const unique = `${this.wamidPrefix}.${this.stats.accepted}`;
    const wamid = 'wamid.' + Buffer.from(unique).toString('base64');
    const message: SandboxMessage = { at: ticket.at, wamid, ...send };
    if (this.o.keepInMemory !== false) this.accepted.push(message);
    this.log?.append(message);
    return wamid;
  }

  private fail(fault: Fault, retryAfter?: number): Reply {
    this.stats.errors[fault.code] = (this.stats.errors[fault.code] ?? 0) + 1;
    return errorReply(fault, retryAfter);
  }

  private checkToken(req: IncomingMessage): Fault | undefined {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
    const expected = this.o.accessToken === undefined ? DEFAULT_TOKEN : this.o.accessToken;
    if (token === '') {
      return { code: 190, details: 'Missing "Authorization: Bearer <access token>" header' };
    }
    if (expected !== null && token !== expected) {
      return { code: 190, details: 'The access token is not the one this sandbox expects' };
    }
    return undefined;
  }

  private onPhoneNumber(req: IncomingMessage, res: ServerResponse, id: string): void {
    req.resume();
    const fault = this.checkToken(req);
    const reply = fault ? this.fail(fault) : jsonReply(200, {
      verified_name: 'Wacamp Sandbox',
      display_phone_number: '+1 555-010-0000',
      id,
      quality_rating: 'GREEN',
      throughput: { level: 'STANDARD' },
    });
    this.after(this.latency(), () => writeReply(res, reply));
  }

  private control(req: IncomingMessage, res: ServerResponse, url: string): void {
    const path = url.split('?')[0];
    if (req.method === 'PUT' && path === '/_sandbox/scenario') {
      return readBody(req, (text) => writeReply(res, this.replaceScenario(text)));
    }
    req.resume();
    if (req.method === 'GET' && path === '/_sandbox/messages') {
      return writeReply(res, jsonReply(200, this.accepted));
    }
    if (req.method === 'GET' && path === '/_sandbox/stats') {
      const stats = { requests: this.requests(), ...this.stats, inMemory: this.accepted.length };
      return writeReply(res, jsonReply(200, stats));
    }
    writeReply(res, jsonReply(404, { error: `No sandbox endpoint ${req.method ?? ''} ${path}` }));
  }

  private replaceScenario(text: string | undefined): Reply {
    try {
      this.setScenario(JSON.parse(text ?? 'null'));
      return { status: 204, body: '' };
    } catch (err) {
      return jsonReply(400, { error: (err as Error).message });
    }
  }

  private latency(): number {
    const latency = this.o.latencyMs ?? 0;
    if (!Array.isArray(latency)) return latency;
    return latency[0] + this.random() * (latency[1] - latency[0]);
  }

  /** Runs `fn` after `ms`, remembering the timer so close() can cancel a stalled answer. */
  private after(ms: number, fn: () => void): void {
    if (ms <= 0) return fn();
    const timer = setTimeout(() => {
      this.stalled.delete(timer);
      fn();
    }, ms);
    this.stalled.add(timer);
  }
}

const HELD = 'held_for_quality_assessment';

function parseSend(text: string | undefined): TemplateSend | Fault {
  if (text === undefined) {
    return { code: 100, details: `The request body is larger than ${MAX_BODY_BYTES} bytes` };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { code: 100, details: 'The request body is not valid JSON' };
  }
  return validateSend(body);
}
