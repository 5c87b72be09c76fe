import { embeddedStatus, ensureEmbedded, stopEmbedded } from '../embedded/server.js';
import { makeContext, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

/** `wacamp db start|stop|status`: the embedded server outlives commands until stopped here. */
export function dbCommand(action: 'start' | 'stop' | 'status') {
  return async (g: GlobalOptions): Promise<number> => {
    const ctx = makeContext(g);
    const home = ctx.env.home;
    if (action === 'stop') {
      const stopped = await stopEmbedded(home);
      say(ctx.json, { stopped }, stopped ? 'embedded PostgreSQL stopped' : 'it was not running',
        (m) => ctx.log.info('db', m));
      return 0;
    }
    const info = action === 'start' ? await ensureEmbedded(home) : await embeddedStatus(home);
    // The URL carries the password: shown only as JSON on stdout, which the caller asked for.
    const text = info ? `embedded PostgreSQL running: port ${info.port}, pid ${info.pid}, ` +
      `data ${info.dataDir}` : `embedded PostgreSQL is not running (home ${home})`;
    say(ctx.json, info ? { running: true, ...info } : { running: false }, text,
      (m) => ctx.log.info('db', m));
    return 0;
  };
}

function say(json: boolean, doc: object, text: string, log: (m: string) => void): void {
  if (json) writeStdout(JSON.stringify(doc) + '\n');
  else log(text);
}
