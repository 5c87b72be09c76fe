import net from 'node:net';

/**
 * A TCP proxy in front of the test's PostgreSQL, so a test can take the database away from one
 * CLI without touching the server other test files share. `cut()` ends every open connection and
 * turns new ones away; `restore()` lets connections through again.
 *
 * Two ways of going away, because clients notice them differently:
 * - `reset`: sockets are destroyed (the peer sees a reset or a close at once), as when the
 *   server is stopped or restarted.
 * - `blackhole`: sockets stay open but nothing is forwarded either way, and new connections are
 *   accepted and then ignored, as when a network path or the host itself dies: no packet says so.
 * - `replies`: what clients send still reaches the server, but no answer comes back (new
 *   connections are ignored): statements run and commit, and their callers never learn it, as
 *   when a connection dies between a COMMIT and its reply.
 */
export type CutMode = 'reset' | 'blackhole' | 'replies';

export interface TcpProxy {
  /** 127.0.0.1 and the port the proxy listens on. */
  readonly port: number;
  /** The same URL as `target`, pointed at the proxy. */
  readonly url: string;
  /** Connections accepted so far (including turned-away ones). */
  readonly accepted: number;
  cut(mode?: CutMode): void;
  restore(): void;
  close(): Promise<void>;
}

interface Pair { client: net.Socket; server: net.Socket }

/** Starts a proxy on 127.0.0.1:0 for the host and port of a postgres:// URL. */
export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const host = target.hostname === 'localhost' ? '127.0.0.1' : target.hostname;
  const targetPort = Number(target.port || 5432);
  const pairs = new Set<Pair>();
  const ignored = new Set<net.Socket>();
  let mode: CutMode | null = null;
  let accepted = 0;

  const server = net.createServer((client) => {
    accepted++;
    client.on('error', () => { /* the peer went away: its pair is torn down below */ });
    if (mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    if (mode === 'blackhole' || mode === 'replies') {
      // Accepted, never answered: the client's connect "succeeds" and then hears nothing.
      client.pause();
      ignored.add(client);
      client.on('close', () => ignored.delete(client));
      return;
    }
    const upstream = net.connect(targetPort, host);
    const pair = { client, server: upstream };
    pairs.add(pair);
    upstream.on('error', () => client.destroy());
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  return {
    port,
    url: url.toString(),
    get accepted() { return accepted; },
    cut(how: CutMode = 'reset') {
      mode = how;
      for (const p of pairs) {
        if (how === 'reset') {
          p.client.resetAndDestroy();
          p.server.destroy();
        } else {
          // Stop forwarding (both ways, or only answers) and hold the sockets open, silent.
          p.server.unpipe(p.client);
          p.server.pause();
          if (how === 'blackhole') {
            p.client.unpipe(p.server);
            p.client.pause();
          }
        }
      }
      if (how === 'reset') pairs.clear();
    },
    restore() {
      mode = null;
      // Silent connections stay dead, as after a real partition: TCP state on both ends is
      // stale. Ending them lets the client notice and reconnect.
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      pairs.clear();
      for (const s of ignored) s.destroy();
      ignored.clear();
    },
    async close() {
      mode = 'reset';
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      for (const s of ignored) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
