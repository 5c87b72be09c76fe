/**
 * CPU seconds spent by each party of a run, from /proc (Linux only; elsewhere every figure is
 * null). The contender is a child of this process, so its time shows in our own cutime/cstime
 * once it has been reaped; PostgreSQL's backends come and go, so the postmaster's own and
 * reaped-children time is added to that of the backends still alive.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const TICKS_PER_S = 100;

/** utime, stime, cutime, cstime of a pid, in seconds; null when it cannot be read. */
function times(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces; every field after its closing parenthesis is numeric.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
    return { own: (utime + stime) / TICKS_PER_S, children: (cutime + cstime) / TICKS_PER_S,
      ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

function serverSeconds(postmasterPid) {
  const root = times(postmasterPid);
  if (!root) return null;
  let total = root.own + root.children;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const t = times(name);
    if (t && t.ppid === postmasterPid) total += t.own;
  }
  return total;
}

/** CPU seconds of the whole machine, busy and idle (iowait counts as idle), from /proc/stat. */
function machineSeconds() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / TICKS_PER_S, idle: idle / TICKS_PER_S };
  } catch {
    return { busy: null, idle: null };
  }
}

/** Seconds of the contender, sandbox, PostgreSQL and machine, to diff; null = unknown. */
export function cpuSnapshot({ sandboxPid, postmasterPid }) {
  const machine = machineSeconds();
  return {
    contender: times('self')?.children ?? null,
    sandbox: sandboxPid ? times(sandboxPid)?.own ?? null : null,
    postgres: postmasterPid ? serverSeconds(postmasterPid) : null,
    machineBusy: machine.busy,
    machineIdle: machine.idle,
    at: performance.now(),
  };
}

/**
 * Seconds each party used between two snapshots; `otherCores` is the machine's busy time that
 * none of them accounts for, per second of the interval: other people's work on a shared box.
 */
export function cpuDelta(before, after) {
  const d = (k) => (before[k] === null || after[k] === null ? null : after[k] - before[k]);
  const parts = [d('contender'), d('sandbox'), d('postgres')];
  const wallS = (after.at - before.at) / 1000;
  const known = parts.every((p) => p !== null) && d('machineBusy') !== null;
  return { contender: parts[0], sandbox: parts[1], postgres: parts[2],
    machineBusy: d('machineBusy'), machineIdle: d('machineIdle'), wallS,
    otherCores: known ? Math.max(0, d('machineBusy') - parts.reduce((a, b) => a + b, 0)) / wallS
      : null };
}

/** The postmaster of a local server: the parent of our own backend, if /proc shows it. */
export function postmasterOf(backendPid) {
  return times(backendPid)?.ppid ?? null;
}
