import type { Logger } from './logger.js';

export interface ProgressSnapshot {
  sent: number;
  failed: number;
  skipped: number;
  unknown: number;
  remaining: number;
  ratePerSecond: number;
  inFlight: number;
  throttled: boolean;
}

/** Where live progress goes: a bar on a terminal, a line every few seconds elsewhere. */
export interface ProgressView {
  phase(text: string): void;
  start(total: number, first: ProgressSnapshot): void;
  update(s: ProgressSnapshot): void;
  stop(): void;
}

const LINE_EVERY_MS = 5000;

/** Off a terminal (cron, CI): one plain timestamped line every few seconds, no escape codes. */
export class LineProgress implements ProgressView {
  private last = 0;

  constructor(private readonly log: Logger) {}

  phase(text: string): void {
    this.log.info('phase', text);
  }

  start(total: number): void {
    this.log.info('progress', `sending to ${total} recipients`);
    this.last = Date.now();
  }

  update(s: ProgressSnapshot): void {
    if (Date.now() - this.last < LINE_EVERY_MS) return;
    this.last = Date.now();
    this.log.info('progress', 'progress', {
      sent: s.sent, failed: s.failed, skipped: s.skipped, unknown: s.unknown,
      remaining: s.remaining, rate: Math.round(s.ratePerSecond), throttled: s.throttled || undefined,
    });
  }

  stop(): void {}
}

/** `--quiet` and `--json` without a terminal: nothing. */
export class SilentProgress implements ProgressView {
  phase(): void {}
  start(): void {}
  update(): void {}
  stop(): void {}
}

/** On a terminal: an ora spinner for the phases, then a cli-progress bar, both on stderr. */
export async function terminalProgress(): Promise<ProgressView> {
  const [{ default: ora }, { default: cliProgress }, { default: chalk }] = await Promise.all([
    import('ora'), import('cli-progress'), import('chalk'),
  ]);
  const spinner = ora({ stream: process.stderr });
  let bar: InstanceType<typeof cliProgress.SingleBar> | null = null;
  const fmt = (s: ProgressSnapshot) => ({
    sent: chalk.green(String(s.sent)), failed: chalk.red(String(s.failed)),
    skipped: chalk.gray(String(s.skipped)),
    unknown: s.unknown ? chalk.yellow(` unknown ${s.unknown}`) : '',
    remaining: String(s.remaining),
    rate: `${Math.round(s.ratePerSecond)}/s${s.throttled ? ' (throttled)' : ''}`,
  });
  return {
    phase(text) {
      if (!spinner.isSpinning) spinner.start(text);
      else spinner.text = text;
    },
    start(total, first) {
      spinner.stop();
      bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: '{bar} {percentage}% | sent {sent} failed {failed} skipped {skipped}{unknown}' +
          ' | left {remaining} | {rate} | ETA {eta_formatted}',
        hideCursor: true, etaBuffer: 200, fps: 10,
      }, cliProgress.Presets.shades_classic);
      bar.start(total, total - first.remaining, fmt(first));
    },
    update(s) {
      bar?.update(Math.max(0, bar.getTotal() - s.remaining), fmt(s));
    },
    stop() {
      spinner.stop();
      bar?.stop();
      bar = null;
    },
  };
}
