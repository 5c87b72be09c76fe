/**
 * Phone numbers as the Cloud API wants them in `to`: E.164 digits without the '+'.
 *
 * Strict on purpose. A number we had to guess at is a message to a stranger, so anything
 * unclear (text around the digits, an extension, a national number with no country to read it
 * in, a digit string that means two different people) is rejected with a reason instead.
 */
import {
  getCountryCallingCode,
  isSupportedCountry,
  parsePhoneNumberFromString,
  validatePhoneNumberLength,
  type CountryCode,
} from 'libphonenumber-js/max';

// 'max' metadata, not the lighter default: with 'min' metadata isValid() checks only the length
// (libphonenumber-js README, "min vs max"), and the ambiguity rule below needs real validity or
// every 10-digit string would read as valid in two countries.

export type PhoneResult =
  | { ok: true; e164: string }
  | { ok: false; code: 'invalid_phone' | 'ambiguous_phone'; reason: string };

/** Digits and the separators people type; '+' only in front. No letters, '#', '/', ';' or 'x'. */
const WRITTEN_NUMBER = /^\+?[0-9 \u00a0().-]+$/;

/** A formatted 15-digit E.164 number with generous separators fits; longer is not one number. */
const MAX_INPUT_CHARS = 40;

/** ITU-T E.164 allows 15 digits; a written '00' exit code and a '(0)' trunk digit add three. */
const MAX_WRITTEN_DIGITS = 15 + 3;

const LENGTH_REASONS: Record<string, string> = {
  TOO_SHORT: 'too few digits',
  TOO_LONG: 'too many digits',
  INVALID_LENGTH: 'wrong number of digits',
  INVALID_COUNTRY: 'unknown country calling code',
  NOT_A_NUMBER: 'not a phone number',
};

/**
 * Normalises one recipient number. `+…` and `00…` are international. A bare digit string is read
 * the way Meta writes wa_id (international, no '+') and, when `defaultCountry` is given, also as a
 * national number of that country; if both readings are valid and differ, it is ambiguous.
 */
export function normalizePhone(raw: string, defaultCountry?: CountryCode): PhoneResult {
  const text = raw.trim();
  if (text === '') return invalid('empty');
  if (text.length > MAX_INPUT_CHARS) return invalid('too long to be one phone number');
  if (!WRITTEN_NUMBER.test(text)) {
    return invalid(
      /[a-z]/i.test(text)
        ? 'contains letters (an extension or other text)'
        : 'contains characters other than digits, spaces, dashes, dots and parentheses',
    );
  }

  const digits = text.replace(/\D/g, '');
  if (digits.length === 0) return invalid('no digits');
  if (digits.length > MAX_WRITTEN_DIGITS) return invalid('too many digits');

  if (text.startsWith('+')) return international(text);
  // '00' is the international prefix in most of the world; keep the rest of the formatting so
  // libphonenumber still recognises a '(0)' trunk marker after the country code.
  if (digits.startsWith('00')) return international(text.replace(/^[^0-9]*00/, '+'));
  return bareDigits(digits, defaultCountry);
}

/** For `--default-country`: an upper-case ISO 3166-1 alpha-2 code libphonenumber knows. */
export function isCountryCode(s: string): s is CountryCode {
  return isSupportedCountry(s);
}

/**
 * For logs: the country-ish prefix and the last two digits, the rest starred
 * ('12025550143' → '1202*****43'). Short inputs show less; non-digits are dropped, so stray text
 * in a bad number never reaches a log either.
 */
export function maskPhone(e164OrRaw: string): string {
  const digits = e164OrRaw.replace(/\D/g, '');
  const head = digits.length >= 10 ? 4 : digits.length >= 6 ? 2 : 0;
  const tail = digits.length >= 8 ? 2 : 0;
  const hidden = digits.length - head - tail;
  return digits.slice(0, head) + '*'.repeat(hidden) + digits.slice(digits.length - tail);
}

function international(text: string): PhoneResult {
  const e164 = validE164(text);
  if (e164 !== undefined) return { ok: true, e164 };
  return invalid(whyInvalid(text));
}

function bareDigits(digits: string, defaultCountry: CountryCode | undefined): PhoneResult {
  // No country calling code starts with 0, so a leading 0 is national: skip the first parse.
  const asInternational = digits.startsWith('0') ? undefined : validE164('+' + digits);
  if (defaultCountry === undefined) {
    if (asInternational !== undefined) return { ok: true, e164: asInternational };
    // Guessing a country for a national number would send to a stranger: ask for one instead.
    return invalid(
      digits.startsWith('0')
        ? 'national format (leading 0) needs a default country'
        : `not a valid international number (${whyInvalid('+' + digits)}); ` +
            'national numbers need a default country',
    );
  }

  const asNational = validNational(digits, defaultCountry);
  if (asInternational !== undefined && asNational !== undefined) {
    if (asInternational === asNational) return { ok: true, e164: asInternational };
    return {
      ok: false,
      code: 'ambiguous_phone',
      reason:
        `valid both as an international number (+${callingCodeOf(asInternational)}) and as a ` +
        `national number of ${defaultCountry}; write it with '+'`,
    };
  }
  const e164 = asInternational ?? asNational;
  if (e164 !== undefined) return { ok: true, e164 };
  return invalid(
    `not valid as an international number or as a national number of ${defaultCountry} ` +
      `(${whyInvalid(digits, defaultCountry)})`,
  );
}

/** E.164 digits when libphonenumber calls the number valid, else undefined. */
function validE164(text: string): string | undefined {
  const parsed = parsePhoneNumberFromString(text, { extract: false });
  return parsed?.isValid() ? parsed.number.slice(1) : undefined;
}

/**
 * The national reading. Given a default country, libphonenumber also honours that country's exit
 * code ('011 44…' in the US), which lands in another calling code and is refused here, and a
 * leading calling code of the country itself, which gives the same number as the international
 * reading and so cannot make a number look ambiguous.
 */
function validNational(digits: string, country: CountryCode): string | undefined {
  const parsed = parsePhoneNumberFromString(digits, { defaultCountry: country, extract: false });
  if (!parsed?.isValid()) return undefined;
  if (parsed.countryCallingCode !== getCountryCallingCode(country)) return undefined;
  return parsed.number.slice(1);
}

function callingCodeOf(e164: string): string {
  return parsePhoneNumberFromString('+' + e164)?.countryCallingCode ?? '?';
}

/** Only on the failure path, so the extra parse costs nothing for good numbers. */
function whyInvalid(text: string, defaultCountry?: CountryCode): string {
  const problem = validatePhoneNumberLength(text, defaultCountry);
  if (problem === undefined) return 'not a valid number';
  return LENGTH_REASONS[problem] ?? 'not a valid number';
}

function invalid(reason: string): PhoneResult {
  return { ok: false, code: 'invalid_phone', reason };
}
