import chalk from 'chalk';

export type LogFormat = 'pretty' | 'plain' | 'json';
export type Verbosity = 'quiet' | 'normal' | 'verbose';
type Level = 'debug' | 'info' | 'warn' | 'error';

export type Fields = Record<string, string | number | boolean | null | undefined>;

/**
 * Scoped, structured logs on stderr. Each line carries its scope (campaign, run) and facts;
 * callers pass masked phones only, and tokens never reach a logger. Off a terminal the lines are
 * timestamped plain text (cron, CI); `--log-format json` writes NDJSON for log shippers.
 */
export class Logger {
  constructor(
    readonly format: LogFormat,
    readonly verbosity: Verbosity,
    private readonly scope: Fields = {},
    private readonly write: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  ) {}

  child(scope: Fields): Logger {
    return new Logger(this.format, this.verbosity, { ...this.scope, ...scope }, this.write);
  }

  debug(event: string, msg: string, fields?: Fields): void {
    if (this.verbosity === 'verbose') this.emit('debug', event, msg, fields);
  }

  info(event: string, msg: string, fields?: Fields): void {
    if (this.verbosity !== 'quiet') this.emit('info', event, msg, fields);
  }

  warn(event: string, msg: string, fields?: Fields): void {
    this.emit('warn', event, msg, fields);
  }

  error(event: string, msg: string, fields?: Fields): void {
    this.emit('error', event, msg, fields);
  }

  private emit(level: Level, event: string, msg: string, fields: Fields = {}): void {
    const all = { ...this.scope, ...fields };
    if (this.format === 'json') {
      this.write(JSON.stringify({ time: new Date().toISOString(), level, event, msg, ...all }));
      return;
    }
    const facts = Object.entries(all)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${k}=${String(v)}`).join(' ');
    if (this.format === 'plain') {
      const time = new Date().toISOString();
      this.write(`${time} ${level.padEnd(5)} ${msg}${facts ? ` ${facts}` : ''}`);
      return;
    }
    const paint = { debug: chalk.gray, info: (s: string) => s, warn: chalk.yellow,
      error: chalk.red }[level];
    this.write(paint(msg) + (facts && this.verbosity === 'verbose' ? chalk.gray(` ${facts}`) : ''));
  }
}
