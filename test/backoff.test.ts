import { describe, expect, it } from 'vitest';
import { backoffMs } from '../src/api/backoff.js';
import { WacampError } from '../src/errors.js';

const top = () => 0.999_999;
const half = () => 0.5;

describe('backoffMs', () => {
  it('doubles the ceiling each attempt from 500 ms', () => {
    expect([1, 2, 3, 4, 5].map((attempt) => backoffMs(attempt, {}, half))).toEqual([
      250, 500, 1000, 2000, 4000,
    ]);
  });

  it('caps the ceiling at 30 s, even for huge attempts', () => {
    expect(backoffMs(7, {}, half)).toBe(15_000);
    expect(backoffMs(8, {}, half)).toBe(15_000);
    expect(backoffMs(2000, {}, top)).toBe(29_999);
  });

  it('uses full jitter: zero is possible, the ceiling is not', () => {
    expect(backoffMs(4, {}, () => 0)).toBe(0);
    expect(backoffMs(4, {}, top)).toBe(3999);
  });

  it('honours baseMs and capMs', () => {
    expect(backoffMs(1, { baseMs: 100 }, half)).toBe(50);
    expect(backoffMs(3, { baseMs: 100, capMs: 300 }, half)).toBe(150);
  });

  it('stays within [0, ceiling) with the real random source', () => {
    for (let i = 0; i < 1000; i++) {
      const delay = backoffMs(3);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(2000);
    }
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects attempt %d', (attempt) => {
    expect(() => backoffMs(attempt)).toThrow(WacampError);
  });

  it('rejects a non-positive base or cap', () => {
    expect(() => backoffMs(1, { baseMs: 0 })).toThrow(/baseMs and capMs/);
    expect(() => backoffMs(1, { capMs: -5 })).toThrow(/baseMs and capMs/);
  });
});
