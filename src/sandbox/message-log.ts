/**
 * The sandbox's NDJSON log of accepted messages. Lines are buffered in memory and appended at
 * most every `flushEveryMs` and on close, so 10,000 accepts a second cost one write per tick
 * instead of one per message.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { WacampError, usageError } from '../errors.js';

export class MessageLog {
  private pending: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly file: FileHandle,
    private readonly path: string,
    flushEveryMs: number,
  ) {
    this.timer = setInterval(() => this.flush(), flushEveryMs);
    // A sandbox left open must not keep a finished test process alive for its log's sake.
    this.timer.unref();
  }

  /** Opens (appends to) the file now, so a bad path fails at start rather than mid-run. */
  static async open(path: string, flushEveryMs = 200): Promise<MessageLog> {
    try {
      return new MessageLog(await open(path, 'a'), path, flushEveryMs);
    } catch (err) {
      throw usageError('SANDBOX_LOG', `Cannot open sandbox log ${path}: ${String(err)}`, err);
    }
  }

  append(entry: unknown): void {
    this.pending.push(JSON.stringify(entry) + '\n');
  }

  /** Chains writes so lines reach the file in the order they were appended. */
  private flush(): Promise<void> {
    if (this.pending.length === 0) return this.writing;
    const chunk = this.pending.join('');
    this.pending = [];
    this.writing = this.writing
      .then(() => this.file.appendFile(chunk))
      .catch((err: unknown) => {
        this.failure ??= err;
      });
    return this.writing;
  }

  /** Writes what is buffered and closes the file; a write that failed earlier surfaces here. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    await this.file.close();
    if (this.failure !== undefined) {
      const message = `Writing sandbox log ${this.path} failed`;
      throw new WacampError('SANDBOX_LOG', message, { cause: this.failure });
    }
  }
}
