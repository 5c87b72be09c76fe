/** Reading request bodies and writing answers for the sandbox's node:http handlers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusFor, metaErrorBody } from './meta-errors.js';
import type { Fault } from './validate.js';

/** Larger bodies are answered with code 100; a template send is a few hundred bytes. */
export const MAX_BODY_BYTES = 1 << 20;

const JSON_TYPE = 'application/json; charset=UTF-8';

export interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

/** Reads the whole body as text; `undefined` when it exceeds MAX_BODY_BYTES. */
export function readBody(req: IncomingMessage, done: (text: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  req.on('end', () => done(size <= MAX_BODY_BYTES ? Buffer.concat(chunks).toString() : undefined));
}

export function errorReply(fault: Fault, retryAfter?: number): Reply {
  const headers: Record<string, string> = {};
  if (retryAfter !== undefined) headers['retry-after'] = String(Math.ceil(retryAfter));
  if (fault.code === 190) headers['www-authenticate'] = 'OAuth "Facebook Platform" "invalid_token"';
  const body = metaErrorBody(fault.code, fault.details);
  return { status: httpStatusFor(fault.code), body, headers };
}

export function jsonReply(status: number, value: unknown): Reply {
  return { status, body: JSON.stringify(value) };
}

export function writeReply(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(reply.body),
    ...reply.headers,
  });
  res.end(reply.body);
}
