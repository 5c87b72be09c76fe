/**
 * Error bodies shaped like the Cloud API's: `{ error: { message: "(#CODE) Title", type, code,
 * error_data: { messaging_product, details }, fbtrace_id } }`.
 *
 * HTTP status per code. Meta's own tables disagree (throttles appear as 400 in some copies and
 * 429 in others), so the sandbox picks one rule and keeps to it: 190 and 0 → 401; the
 * campaign-wide throttles 130429, 4, 80007 and 613 → 429; every other code → 400, including the
 * pair-rate limit 131056. Clients should branch on `error.code`, never on the status.
 */

const TITLES: Record<number, string> = {
  0: 'AuthException',
  1: 'API Unknown',
  2: 'API Service',
  3: 'API Method',
  4: 'Application request limit reached',
  10: 'Permission Denied',
  100: 'Invalid parameter',
  190: 'Invalid OAuth access token - Cannot parse access token',
  200: 'Permissions error',
  368: 'Temporarily blocked for policies violations',
  613: 'Calls to this api have exceeded the rate limit.',
  80007: 'Rate limit issues',
  130429: 'Rate limit hit',
  130472: "User's number is part of an experiment",
  131000: 'Something went wrong',
  131005: 'Access denied',
  131008: 'Required parameter is missing',
  131009: 'Parameter value is not valid',
  131016: 'Service unavailable',
  131021: 'Recipient cannot be sender',
  131026: 'Message Undeliverable',
  131030: 'Recipient phone number not in allowed list',
  131031: 'Business Account locked',
  131042: 'Business eligibility payment issue',
  131047: 'Re-engagement message',
  131048: 'Spam rate limit hit',
  131049: 'Meta chose not to deliver',
  131050: 'Unable to deliver the message',
  131056: '(Business Account, Consumer Account) pair rate limit hit',
  131057: 'Account in maintenance mode',
  132000: 'Number of parameters does not match the expected number of params',
  132001: 'Template name does not exist in the translation',
  132005: 'Translated text too long',
  132007: 'Template Format Character Policy Violated',
  132012: 'Parameter format does not match format in the created template',
  132015: 'Template is Paused',
  132016: 'Template is Disabled',
  132018: 'There was an issue with the parameters in your template.',
  133004: 'Server Temporarily Unavailable',
  133010: 'Account not registered',
  135000: 'Generic user error',
};

const TOO_MANY = new Set([4, 613, 80007, 130429]);

export function httpStatusFor(code: number): number {
  if (code === 190 || code === 0) return 401;
  return TOO_MANY.has(code) ? 429 : 400;
}

export function titleFor(code: number): string {
  return TITLES[code] ?? `Error ${code}`;
}

/** Meta's fbtrace_id is an opaque 27-character token; ours only needs to look like one. */
export function fbtraceId(): string {
  let id = '';
  while (id.length < 27) id += Math.random().toString(36).slice(2);
  return 'A' + id.slice(0, 26);
}

export function metaErrorBody(code: number, details?: string): string {
  return JSON.stringify({
    error: {
      message: `(#${code}) ${titleFor(code)}`,
      type: 'OAuthException',
      code,
      error_data: { messaging_product: 'whatsapp', details: details ?? titleFor(code) },
      fbtrace_id: fbtraceId(),
    },
  });
}

/** What a load balancer in front of Meta sends on a 502: HTML, no JSON, no error code. */
export const BAD_GATEWAY_HTML =
  '<html><head><title>502 Bad Gateway</title></head>' +
  '<body><center><h1>502 Bad Gateway</h1></center></body></html>\n';
