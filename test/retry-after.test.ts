import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from '../src/api/retry-after.js';

const NOW = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');

describe('parseRetryAfter: delta-seconds', () => {
  it.each([
    ['0', 0],
    ['1', 1000],
    ['6', 6000],
    [' 30 ', 30_000],
    ['3600', MAX_RETRY_AFTER_MS],
  ])('%j → %i ms', (value, expected) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });

  it('rejects more than an hour', () => {
    expect(parseRetryAfter('3601', NOW)).toBeUndefined();
    expect(parseRetryAfter('99999999999999999999999', NOW)).toBeUndefined();
  });

  // V8's Date.parse reads each of these as a day in 2001; none may become a delay.
  it.each(['-1', '1.5', '5s', '+5', '0x10', '1e3', '12 34'])('rejects %j', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});

describe('parseRetryAfter: HTTP-date', () => {
  it('reads IMF-fixdate, RFC 850 and asctime as GMT', () => {
    const thirtySecondsOn = NOW - 30_000;
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', thirtySecondsOn)).toBe(30_000);
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', thirtySecondsOn)).toBe(30_000);
    expect(parseRetryAfter('Sun Nov  6 08:49:37 1994', thirtySecondsOn)).toBe(30_000);
  });

  it('a date in the past means no wait', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', NOW + 60_000)).toBe(0);
  });

  it('a date more than an hour ahead is rejected', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', NOW - MAX_RETRY_AFTER_MS)).toBe(
      MAX_RETRY_AFTER_MS,
    );
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', NOW - MAX_RETRY_AFTER_MS - 1))
      .toBeUndefined();
  });

  it.each(['Sun, 99 Foo 1994 99:99:99 GMT', 'soon', 'Retry later'])('rejects %j', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});

describe('parseRetryAfter: absent', () => {
  it.each([null, undefined, '', '   '])('%j → undefined', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});
