import { usageError } from './errors.js';

/**
 * Parses the duration syntax every flag shares: `500ms`, `30s`, `55m`, `2h`; a bare number is in
 * `bareUnit` (seconds for most flags, milliseconds for the sandbox's latency).
 */
export function parseDurationMs(flag: string, text: string, bareUnit: 's' | 'ms' = 's'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) {
    throw usageError('bad_duration',
      `${flag}: "${text}" is not a duration; write e.g. 500ms, 30s, 55m`);
  }
  const value = Number(match[1]);
  const unit = match[2] ?? bareUnit;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit] ?? 1000;
  return Math.round(value * factor);
}

/** `--rate`: requests started per second, a positive number or `unlimited` (Infinity). */
export function parseRate(flag: string, text: string): number {
  if (text.trim().toLowerCase() === 'unlimited') return Infinity;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw usageError('bad_rate',
      `${flag}: "${text}" must be a positive number of requests per second or "unlimited"`);
  }
  return value;
}

export function parsePositiveInt(flag: string, text: string, max = 100_000): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw usageError('bad_number', `${flag}: "${text}" must be a whole number from 1 to ${max}`);
  }
  return value;
}

/** `--max-error-rate`: `0.5` or `50%`, a share strictly above 0 and at most 1. */
export function parseShare(flag: string, text: string): number {
  const percent = text.trim().endsWith('%');
  const value = Number(percent ? text.trim().slice(0, -1) : text) / (percent ? 100 : 1);
  if (!Number.isFinite(value) || value <= 0 || value > 1) {
    throw usageError('bad_share', `${flag}: "${text}" must be a share such as 0.5 or 50%`);
  }
  return value;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
