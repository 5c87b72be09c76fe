import { describe, expect, it } from 'vitest';
import type { CountryCode } from 'libphonenumber-js';
import { isCountryCode, maskPhone, normalizePhone } from '../src/phone.js';

type Case = [raw: string, country: CountryCode | undefined, expected: string];

// expected: E.164 digits, or the error code when the number must be refused.
const cases: Case[] = [
  // Written internationally: '+' or '00', whatever the default country.
  ['+1 (202) 555-0143', undefined, '12025550143'],
  ['+12025550143', 'GB', '12025550143'],
  ['0044 20 7946 0000', undefined, '442079460000'],
  ['+44 (0)20 7946 0000', undefined, '442079460000'],
  ['+49 30 123456', undefined, '4930123456'],
  ['+49 151 12345678', undefined, '4915112345678'],
  ['+91 98765 43210', undefined, '919876543210'],
  ['+55 11 98765-4321', undefined, '5511987654321'],

  // Bare digits in Meta's wa_id form: international, no '+'.
  ['12025550143', undefined, '12025550143'],
  ['447911123456', 'GB', '447911123456'],
  ['919876543210', 'IN', '919876543210'],
  ['5511987654321', undefined, '5511987654321'],
  // Both readings land on the same number: not ambiguous.
  ['12025550143', 'US', '12025550143'],
  ['4930123456', 'DE', '4930123456'],

  // National numbers, valid only as national numbers of the default country.
  ['(202) 555-0143', 'US', '12025550143'],
  ['202.555.0143', 'US', '12025550143'],
  ['2025550143', 'US', '12025550143'],
  ['020 7946 0000', 'GB', '442079460000'],
  ['07911 123456', 'GB', '447911123456'],
  ['030 123456', 'DE', '4930123456'],
  ['98765 43210', 'IN', '919876543210'],
  ['(11) 98765-4321', 'BR', '5511987654321'],

  // Valid both ways, as two different numbers: refuse rather than pick one.
  ['2015550123', 'US', 'ambiguous_phone'], // +1 201… vs +20 15… (Egypt)
  ['9592123456', 'IN', 'ambiguous_phone'], // +91 95… vs +95 92… (Myanmar)
  ['84912345678', 'BR', 'ambiguous_phone'], // +55 84… vs +84 91… (Vietnam)
  ['33612345678', 'DE', 'ambiguous_phone'], // +33 6… (a French mobile) vs German 0336…

  // National format without a default country: guessing the country sends to strangers.
  ['07911 123456', undefined, 'invalid_phone'],
  ['(202) 555-0143', undefined, 'invalid_phone'],
  ['2025550143', undefined, 'invalid_phone'],

  // Letters, extensions, surrounding text: refused, never extracted.
  ['+1 202 555 0143 x123', undefined, 'invalid_phone'],
  ['+1 202 555 0143 ext. 5', undefined, 'invalid_phone'],
  ['+12025550143;ext=5', undefined, 'invalid_phone'],
  ['call me on +12025550143', undefined, 'invalid_phone'],
  ['tel:+12025550143', undefined, 'invalid_phone'],
  ['1-800-FLOWERS', 'US', 'invalid_phone'],
  ['+12025550143 / +12025550144', undefined, 'invalid_phone'],
  ['+1 202 555 0143 #', undefined, 'invalid_phone'],
  ['++12025550143', undefined, 'invalid_phone'],
  ['12+025550143', undefined, 'invalid_phone'],
  ['＋１２０２５５５０１４３', undefined, 'invalid_phone'], // full-width digits

  // Too few, too many, not a number at all.
  ['', 'US', 'invalid_phone'],
  ['   ', 'US', 'invalid_phone'],
  ['()-', 'US', 'invalid_phone'],
  ['+1 202 555 01', undefined, 'invalid_phone'],
  ['+1 202 555 0143 99', undefined, 'invalid_phone'],
  ['202555014', 'US', 'invalid_phone'],
  ['+1234567890123456789', undefined, 'invalid_phone'],
  ['9'.repeat(60), undefined, 'invalid_phone'],
  // Possible length but not a real range: isValid(), not just isPossible().
  ['+1 555 555 5555', undefined, 'invalid_phone'],
  // An exit code is not a national number of the default country.
  ['011 44 20 7946 0000', 'US', 'invalid_phone'],
];

describe('normalizePhone', () => {
  it.each(cases)('%j (default %s) → %s', (raw, country, expected) => {
    const result = normalizePhone(raw, country);
    expect(result.ok ? result.e164 : result.code).toBe(expected);
  });

  it('says why, in a short sentence that never repeats the number', () => {
    const results = cases.map(([raw, country]) => ({ raw, result: normalizePhone(raw, country) }));
    for (const { raw, result } of results) {
      if (result.ok) continue;
      expect(result.reason.length).toBeGreaterThan(3);
      expect(result.reason.length).toBeLessThan(160);
      if (raw.replace(/\D/g, '').length >= 6) expect(result.reason).not.toContain(raw);
    }
  });

  it('names the reason for the common refusals', () => {
    expect(normalizePhone('')).toMatchObject({ reason: 'empty' });
    expect(normalizePhone('+1 202 555 0143 x123')).toMatchObject({ reason: /letters/ });
    expect(normalizePhone('07911 123456')).toMatchObject({ reason: /default country/ });
    expect(normalizePhone('+1 202 555 01')).toMatchObject({ reason: /too few digits/ });
    expect(normalizePhone('2015550123', 'US')).toMatchObject({
      code: 'ambiguous_phone',
      reason: /\+20\b.*national number of US/,
    });
  });
});

describe('isCountryCode', () => {
  it('accepts upper-case ISO codes libphonenumber knows and nothing else', () => {
    expect(['US', 'GB', 'DE', 'IN', 'BR'].every(isCountryCode)).toBe(true);
    expect(['us', 'XX', 'USA', '', 'U'].some(isCountryCode)).toBe(false);
  });
});

describe('maskPhone', () => {
  it.each([
    ['12025550143', '1202*****43'],
    ['+1 (202) 555-0143', '1202*****43'],
    ['4915112345678', '4915*******78'],
    ['2908999', '29*****'],
    ['12345', '*****'],
    ['', ''],
    ['call me maybe', ''],
  ])('%j → %j', (raw, masked) => {
    expect(maskPhone(raw)).toBe(masked);
  });
});
