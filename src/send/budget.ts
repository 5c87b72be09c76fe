/**
 * The error budget: once `minFinished` sends have finished, when more than `maxShare` of the
 * last `window` finished sends failed with one and the same code, the campaign is paused — a
 * systemic fault (a bad template, an account problem Meta reports per message) should cost a few
 * hundred messages, not the whole list. Permanent per-recipient errors below that are normal.
 */
export class ErrorBudget {
  private readonly codes: (string | null)[] = [];
  private readonly tally = new Map<string, number>();
  private finished = 0;

  constructor(
    private readonly maxShare: number,
    private readonly window = 200,
    private readonly minFinished = 20,
  ) {}

  /** Records one finished send (`code` null for a success); returns the code over budget. */
  record(code: string | null): string | null {
    this.finished++;
    this.codes.push(code);
    if (code !== null) this.tally.set(code, (this.tally.get(code) ?? 0) + 1);
    if (this.codes.length > this.window) {
      const old = this.codes.shift();
      if (old != null) this.tally.set(old, (this.tally.get(old) ?? 1) - 1);
    }
    if (code === null || this.finished < this.minFinished) return null;
    const share = (this.tally.get(code) ?? 0) / this.codes.length;
    return share > this.maxShare ? code : null;
  }

  share(code: string): number {
    return (this.tally.get(code) ?? 0) / Math.max(1, this.codes.length);
  }
}
