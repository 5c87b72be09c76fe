/**
 * Text rules for template parameter values: Meta's cleaning rule and its length limits.
 *
 * Lengths are counted in Unicode code points, so an emoji or any astral character is one, and a
 * value over its limit is rejected, never cut: cutting would change what a person reads and
 * could split a character in two. Meta does not say whether it counts code points or UTF-16
 * units; for text outside the astral planes the two agree.
 */

/**
 * Upper bounds on one parameter value, in code points.
 *
 * - headerText 60, bodyText 1024: Cloud API reference, parameter object `text` ("header: 60
 *   characters; body: 1024 characters if other component types are included, 32768 if body is
 *   the only component"). We apply 1024 to every body so the limit does not depend on the
 *   template's other components; a body-only template with values over 1024 is rejected here
 *   although Meta would take it.
 * - urlSuffix 2000: Meta caps a template URL button's URL at 2000 characters; the suffix alone
 *   can be no longer. The prefix is not subtracted, so Meta may still refuse a suffix near 2000.
 * - couponCode 20: Meta's coupon-code template page ("Maximum 20 characters"); some provider
 *   pages say 15. Unsure which holds today; 20 is Meta's own figure.
 * - quickReplyPayload 256: not documented for template buttons. 256 is the documented limit of an
 *   interactive reply button's `id`, the nearest documented analogue; unsure.
 */
export const PARAM_LIMITS = {
  headerText: 60,
  bodyText: 1024,
  urlSuffix: 2000,
  couponCode: 20,
  quickReplyPayload: 256,
} as const;

export type ParamLimitName = keyof typeof PARAM_LIMITS;

/**
 * Meta's rule for parameter text: no newlines or tabs and no more than four consecutive spaces.
 * Each run of newline/tab characters becomes one space, each run of five or more spaces becomes
 * one space, and the ends are trimmed.
 */
export function cleanParam(value: string): string {
  return value
    .replace(/[\t\n\v\f\r\u0085\u2028\u2029]+/g, ' ')
    .replace(/ {5,}/g, ' ')
    .trim();
}

/** Number of Unicode code points; a lone surrogate counts as one. */
export function codePointLength(s: string): number {
  let count = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    const next = s.charCodeAt(i + 1);
    // A high surrogate followed by a low one is a single astral character: skip its second half.
    if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
    count++;
  }
  return count;
}
