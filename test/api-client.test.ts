import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiClient, type ApiClient, type ApiClientOptions } from '../src/api/client.js';
import { WacampError } from '../src/errors.js';

const TOKEN = 'EAAG-secret-token-never-in-output';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  remotePort: number | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

let server: Server;
let baseUrl: string;
let handler: Handler;
let seen: Seen[] = [];
const clients: ApiClient[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const entry = {
        method: req.method ?? '', url: req.url ?? '', headers: req.headers, body,
        remotePort: req.socket.remotePort,
      };
      seen.push(entry);
      handler(req, res, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  server.closeAllConnections();
  seen = [];
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function client(overrides: Partial<ApiClientOptions> = {}): ApiClient {
  const created = createApiClient({
    baseUrl, version: 'v23.0', phoneNumberId: '1234567890', accessToken: TOKEN,
    connections: 2, requestTimeoutMs: 2000, ...overrides,
  });
  clients.push(created);
  return created;
}

function json(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const MESSAGE = { messaging_product: 'whatsapp', to: '4915112345678', type: 'template' };

describe('ApiClient against a local HTTP server', () => {
  it('POSTs the message with bearer auth and JSON, and returns the parsed answer', async () => {
    const answer = { messages: [{ id: 'wamid.OK', message_status: 'accepted' }] };
    handler = (_req, res) => json(res, 200, answer);

    const facts = await client().sendMessage(MESSAGE);

    expect(facts).toEqual({
      kind: 'http', status: 200, body: answer, bodyParsed: true, retryAfter: null,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v23.0/1234567890/messages' });
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen[0]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual(MESSAGE);
  });

  it('returns a Graph API error body with its status and Retry-After', async () => {
    const error = { error: { message: '(#131056) Pair rate limit hit', code: 131056 } };
    handler = (_req, res) => json(res, 400, error, { 'retry-after': '6' });

    expect(await client().sendMessage(MESSAGE)).toEqual({
      kind: 'http', status: 400, body: error, bodyParsed: true, retryAfter: '6',
    });
  });

  it('keeps a non-JSON 502 as raw text with bodyParsed false', async () => {
    handler = (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>Bad Gateway</html>');
    };

    expect(await client().sendMessage(MESSAGE)).toEqual({
      kind: 'http', status: 502, body: '<html>Bad Gateway</html>', bodyParsed: false,
      retryAfter: null,
    });
  });

  it('GETs the phone number for check', async () => {
    handler = (_req, res) => json(res, 200, { id: '1234567890', display_phone_number: '+49 1' });

    const facts = await client().getPhoneNumber();

    expect(facts).toMatchObject({ kind: 'http', status: 200, bodyParsed: true });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/v23.0/1234567890' });
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('keeps a path prefix in the base URL', async () => {
    handler = (_req, res) => json(res, 200, { messages: [{ id: 'wamid.P' }] });

    await client({ baseUrl: `${baseUrl}/graph/` }).sendMessage(MESSAGE);

    expect(seen[0]?.url).toBe('/graph/v23.0/1234567890/messages');
  });

  it('reuses a kept-alive connection for sequential requests', async () => {
    handler = (_req, res) => json(res, 200, { messages: [{ id: 'wamid.K' }] });
    const api = client({ connections: 1 });

    await api.sendMessage(MESSAGE);
    await api.sendMessage(MESSAGE);

    expect(seen).toHaveLength(2);
    expect(seen[1]?.remotePort).toBe(seen[0]?.remotePort);
  });
});

describe('ApiClient failures', () => {
  it('a socket destroyed after reading the request is a written network error', async () => {
    handler = (req) => req.socket.destroy();

    const facts = await client().sendMessage(MESSAGE);

    expect(facts).toMatchObject({ kind: 'network', requestWritten: true });
    expect(seen).toHaveLength(1);
    expect(JSON.stringify(facts)).not.toContain(TOKEN);
  });

  it('a refused port is a network error that was never written', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const facts = await client({ baseUrl: `http://127.0.0.1:${port}` }).sendMessage(MESSAGE);

    expect(facts).toEqual({ kind: 'network', errorCode: 'ECONNREFUSED', requestWritten: false });
  });

  it('reports a timeout when no answer comes in time', async () => {
    handler = () => undefined; // never answers

    const started = Date.now();
    const facts = await client({ requestTimeoutMs: 150 }).sendMessage(MESSAGE);

    expect(facts).toEqual({ kind: 'timeout' });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('reports a timeout when the body stalls after the headers', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"messages":');
    };

    expect(await client({ requestTimeoutMs: 150 }).sendMessage(MESSAGE)).toEqual({
      kind: 'timeout',
    });
  });

  it('reports aborted when the caller aborts while the request is in flight', async () => {
    const controller = new AbortController();
    handler = () => controller.abort(); // the server got it, then the drain deadline hit

    const facts = await client({ requestTimeoutMs: 5000 }).sendMessage(MESSAGE, controller.signal);

    expect(facts).toEqual({ kind: 'aborted' });
    expect(seen).toHaveLength(1);
  });

  it('sends nothing when the signal is already aborted', async () => {
    handler = (_req, res) => json(res, 200, {});
    const controller = new AbortController();
    controller.abort();

    const facts = await client().sendMessage(MESSAGE, controller.signal);

    expect(facts).toEqual({
      kind: 'network', errorCode: 'aborted_before_send', requestWritten: false,
    });
    expect(seen).toHaveLength(0);
  });

  it('close waits for a request in flight', async () => {
    handler = (_req, res) => setTimeout(() => json(res, 200, { messages: [{ id: 'w' }] }), 50);
    const api = client();

    const pending = api.sendMessage(MESSAGE);
    await api.close();

    expect(await pending).toMatchObject({ kind: 'http', status: 200, bodyParsed: true });
  });

  it('a request after close was never written', async () => {
    const api = client();
    await api.close();

    expect(await api.sendMessage(MESSAGE)).toEqual({
      kind: 'network', errorCode: 'client_closed', requestWritten: false,
    });
    expect(seen).toHaveLength(0);
    await api.close(); // idempotent
  });

  it('a body that cannot be serialised is never sent', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;

    expect(await client().sendMessage(circular)).toEqual({
      kind: 'network', errorCode: 'body_not_serialisable', requestWritten: false,
    });
  });
});

describe('createApiClient validation', () => {
  const valid: ApiClientOptions = {
    baseUrl: 'https://graph.facebook.com', version: 'v23.0', phoneNumberId: '1',
    accessToken: TOKEN, connections: 1, requestTimeoutMs: 1000,
  };

  it.each([
    ['baseUrl', 'not a url'],
    ['baseUrl', 'ftp://example.test'],
    ['baseUrl', `https://graph.facebook.com/?access_token=${TOKEN}`],
    ['version', '23.0'],
    ['phoneNumberId', ' '],
    ['accessToken', ''],
    ['connections', 0],
    ['requestTimeoutMs', 0],
  ])('rejects %s = %j with a usage error that hides the token', (key, value) => {
    let thrown: unknown;
    try {
      createApiClient({ ...valid, [key]: value });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(WacampError);
    expect((thrown as WacampError).exitCode).toBe(2);
    expect((thrown as WacampError).message).not.toContain(TOKEN);
  });
});
