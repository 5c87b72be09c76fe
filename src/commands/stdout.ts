/**
 * stdout is only for results (`--json`). Writes are counted so the entry point can wait for
 * them to drain before the process ends: `send --json | cat > out.json` must always parse.
 */
let pending = 0;
let drained: (() => void) | null = null;

export function writeStdout(text: string): void {
  pending++;
  process.stdout.write(text, () => {
    pending--;
    if (pending === 0) drained?.();
  });
}

export function stdoutDrained(): Promise<void> {
  if (pending === 0) return Promise.resolve();
  return new Promise((resolve) => { drained = resolve; });
}
