/**
 * Turns one recipient's `variables` into the `template.components` array of a Cloud API send.
 *
 * Pure and total over row data: a bad row comes back as { ok: false } with a stable error code
 * and a `shape`, the same string for every row with the same structural problem, so the caller
 * can tell "this row is bad" from "every row is bad, stop the run". Messages and shapes name
 * placeholders, counts and JSON types, never values: values are personal data.
 *
 * Longer than our usual file on purpose: every check of row data lives here, so "never throws on
 * row data" can be verified in one place.
 */
import { braces, isRecord, type ButtonSpec, type TemplateSpec } from './definition.js';
import { cleanParam, codePointLength, PARAM_LIMITS, type ParamLimitName } from './text.js';

export type RenderResult =
  | { ok: true; components: unknown[] }
  | { ok: false; code: string; message: string; shape: string };

type Problem = Extract<RenderResult, { ok: false }>;
type Parameter = Record<string, unknown>;
type MediaKind = 'image' | 'video' | 'document';

/** The variables of one row, split per component; undefined means "not given". */
interface Split {
  header?: unknown;
  body?: unknown;
  buttons?: unknown;
}

/**
 * Carries a row's problem from deep inside rendering back to renderComponents, which always
 * catches it. Deliberately not an Error: it never leaves this module, and capturing a stack trace
 * per bad row made 10,000 bad rows take 46 ms instead of 3 ms.
 */
class RowProblem {
  constructor(readonly problem: Problem) {}
}

const STRUCTURE_KEYS = new Set(['header', 'body', 'buttons']);
const MEDIA_LINK = /^https?:\/\/\S+$/i;
const CURRENCY_CODE = /^[A-Z]{3}$/;

export function renderComponents(spec: TemplateSpec, variables: unknown): RenderResult {
  try {
    const split = splitVariables(spec, variables);
    const components: unknown[] = [];
    const header = renderHeader(spec, split.header);
    if (header) components.push(header);
    const body = renderBody(spec, split.body);
    if (body) components.push(body);
    components.push(...renderButtons(spec, split.buttons));
    return { ok: true, components };
  } catch (err) {
    if (err instanceof RowProblem) return err.problem;
    throw err;
  }
}

/**
 * Accepted shapes: null (no parameters), an array (positional body values), a flat object of
 * names (named templates), or { header?, body?, buttons? }.
 */
function splitVariables(spec: TemplateSpec, variables: unknown): Split {
  if (variables === null || variables === undefined) return {};
  if (Array.isArray(variables)) return { body: variables };
  if (!isRecord(variables)) throw wrongType('variables', variables);

  const keys = Object.keys(variables);
  if (keys.length === 0) return {};
  const headerNames = spec.header?.kind === 'text' ? spec.header.params : [];
  const names = new Set(spec.format === 'named' ? [...spec.body.params, ...headerNames] : []);
  // A named template may itself have a parameter called `body` or `header`; then it is flat.
  if (keys.every((k) => STRUCTURE_KEYS.has(k)) && !keys.every((k) => names.has(k))) {
    return { header: variables.header, body: variables.body, buttons: variables.buttons };
  }

  if (spec.format === 'positional') throw namesForPositional('body', spec.body.params);
  return splitFlat(spec, variables, names);
}

/**
 * A flat object of names (named templates only). Besides header and body names it may carry
 * `buttons`, and `header` when the header is media: neither has a name in the template text.
 */
function splitFlat(
  spec: TemplateSpec,
  variables: Record<string, unknown>,
  names: Set<string>,
): Split {
  const media = spec.header !== undefined && spec.header.kind !== 'text';
  const carried = (key: string) =>
    !names.has(key) && (key === 'buttons' || (key === 'header' && media));
  const unknown = Object.keys(variables).filter((k) => !names.has(k) && !carried(k));
  if (unknown.length > 0) {
    const message = `template has no parameter ${braces(unknown)}; it has ${braces([...names])}`;
    throw mismatch(message, `unexpected ${unknown.join(',')}`);
  }
  const headerNames = spec.header?.kind === 'text' ? spec.header.params : [];
  let header: unknown;
  if (headerNames.length > 0) header = pick(variables, headerNames);
  else if (carried('header')) header = variables.header;
  return {
    header,
    body: pick(variables, spec.body.params),
    buttons: carried('buttons') ? variables.buttons : undefined,
  };
}

function renderHeader(spec: TemplateSpec, value: unknown): Parameter | undefined {
  const header = spec.header;
  const given = value !== undefined && value !== null;
  if (header !== undefined && header.kind !== 'text') {
    return { type: 'header', parameters: [mediaParameter(header.kind, value)] };
  }
  const params = header?.params ?? [];
  if (!given && params.length === 0) return undefined;
  if (!given || params.length === 0) throw expected('header', params, given ? 1 : 0);

  const name = params[0] ?? '1';
  let single: unknown = value;
  if (Array.isArray(value)) {
    if (value.length !== 1) throw expected('header', params, value.length);
    single = value[0];
  } else if (spec.format === 'named' && isRecord(value) && !('type' in value)) {
    single = namedValues('header', params, value)[0];
  }
  const parameter = valueParameter(`header {{${name}}}`, single, 'headerText');
  if (spec.format === 'named') parameter.parameter_name = name;
  return { type: 'header', parameters: [parameter] };
}

function renderBody(spec: TemplateSpec, value: unknown): Parameter | undefined {
  const params = spec.body.params;
  const values = bodyValues(spec, value);
  if (params.length === 0) return undefined;

  const parameters = params.map((name, i) => {
    const parameter = valueParameter(`body {{${name}}}`, values[i], 'bodyText');
    // Named templates need parameter_name on every parameter or Meta answers error 100.
    if (spec.format === 'named') parameter.parameter_name = name;
    return parameter;
  });
  return { type: 'body', parameters };
}

/** The body's values in template order, or the mismatch that prevents it. */
function bodyValues(spec: TemplateSpec, value: unknown): unknown[] {
  const params = spec.body.params;
  if (value === undefined || value === null) {
    if (params.length > 0) throw expected('body', params, 0);
    return [];
  }
  if (spec.format === 'named') {
    if (isRecord(value)) return namedValues('body', params, value);
    if (!Array.isArray(value)) throw wrongType('body', value);
    if (value.length > 0 || params.length > 0) {
      const message = `template body expects named values ${braces(params)}; got an array`;
      throw mismatch(message, 'body expects names got array');
    }
    return [];
  }
  if (isRecord(value)) throw namesForPositional('body', params);
  if (!Array.isArray(value)) throw wrongType('body', value);
  if (value.length !== params.length) throw expected('body', params, value.length);
  return value;
}

/** Values in template order; a missing or an extra name is a mismatch, named in the message. */
function namedValues(where: string, params: string[], value: Record<string, unknown>): unknown[] {
  const missing = params.filter((p) => !(p in value));
  const extra = Object.keys(value).filter((k) => !params.includes(k));
  if (missing.length === 0 && extra.length === 0) return params.map((p) => value[p]);

  const said: string[] = [];
  if (missing.length > 0) said.push(`missing ${braces(missing)}`);
  if (extra.length > 0) said.push(`unexpected ${braces(extra)}`);
  throw mismatch(`template ${where} expects ${braces(params)}; ${said.join(', ')}`);
}

function renderButtons(spec: TemplateSpec, value: unknown): Parameter[] {
  if (value !== undefined && value !== null && !Array.isArray(value)) {
    throw wrongType('buttons', value);
  }
  const values: unknown[] = Array.isArray(value) ? value : [];
  // Trailing nulls mean "no value"; a real value past the last button is a mismatch.
  if (values.slice(spec.buttons.length).some((v) => v !== undefined && v !== null)) {
    const count = spec.buttons.length;
    const message = `template has ${count} button(s); got ${values.length} button values`;
    throw mismatch(message, `buttons expects ${count} got ${values.length}`);
  }

  const rendered: Parameter[] = [];
  for (const button of spec.buttons) {
    const parameter = buttonParameter(button, values[button.index]);
    if (parameter === undefined) continue;
    const index = String(button.index);
    rendered.push({ type: 'button', sub_type: button.kind, index, parameters: [parameter] });
  }
  return rendered;
}

/** url: the URL suffix; quick_reply: an optional payload; copy_code: the coupon code. */
function buttonParameter(button: ButtonSpec, value: unknown): Parameter | undefined {
  const where = `button ${button.index} (${button.kind})`;
  const given = value !== undefined && value !== null;
  if (button.kind === 'copy_code') {
    if (!given) throw mismatch(`template ${where} expects a coupon code; got none`);
    return { type: 'coupon_code', coupon_code: buttonText(where, value, 'couponCode') };
  }
  if (!given) {
    if (button.kind === 'url' && button.params.length > 0) throw expected(where, button.params, 0);
    return undefined;
  }
  if (button.kind === 'quick_reply') {
    return { type: 'payload', payload: buttonText(where, value, 'quickReplyPayload') };
  }
  if (button.kind === 'other' || button.params.length === 0) throw expected(where, [], 1);
  return { type: 'text', text: buttonText(where, value, 'urlSuffix') };
}

function buttonText(where: string, value: unknown, limit: ParamLimitName): string {
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) {
    return checkedText(where, String(value), limit);
  }
  throw malformed(`${where} must be a string; got ${typeName(value)}`);
}

/** A header or body value: text, a number, or one of Meta's typed currency/date_time values. */
function valueParameter(where: string, value: unknown, limit: ParamLimitName): Parameter {
  if (value === undefined || value === null) {
    throw problem('param_empty', `${where} is empty`);
  }
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) {
    return { type: 'text', text: checkedText(where, String(value), limit) };
  }
  if (isRecord(value) && (value.type === 'currency' || value.type === 'date_time')) {
    const fallback = value.fallback_value;
    if (typeof fallback !== 'string') {
      throw malformed(`${where} ${value.type} needs a fallback_value string`);
    }
    const fallbackValue = checkedText(where, fallback, limit);
    if (value.type === 'date_time') {
      return { type: 'date_time', date_time: { fallback_value: fallbackValue } };
    }
    return currencyParameter(where, value, fallbackValue);
  }
  throw malformed(
    `${where} is ${typeName(value)}; expected text, a number, or a currency/date_time object`,
  );
}

function currencyParameter(
  where: string,
  value: Record<string, unknown>,
  fallbackValue: string,
): Parameter {
  const { code, amount_1000: amount } = value;
  if (typeof code !== 'string' || !CURRENCY_CODE.test(code)) {
    throw malformed(`${where} currency code must be an ISO 4217 code like USD`);
  }
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
    throw malformed(`${where} currency amount_1000 must be an integer`);
  }
  const currency = { fallback_value: fallbackValue, code, amount_1000: amount };
  return { type: 'currency', currency };
}

/** A media header: a URL string, { link }, or { image | video | document: { link } }. */
function mediaParameter(kind: MediaKind, value: unknown): Parameter {
  const where = `header ${kind}`;
  const nested = isRecord(value) ? value[kind] : undefined;
  const media = isRecord(nested) ? nested : value;
  const link = typeof media === 'string' ? media.trim() : isRecord(media) ? media.link : undefined;
  if (link === undefined || link === null) {
    throw malformed(`template ${where} needs a link; got none`, `${where} link missing`);
  }
  if (typeof link !== 'string' || !MEDIA_LINK.test(link)) {
    throw malformed(`${where} link is not an http(s) URL`);
  }
  const object: Record<string, string> = { link };
  // A document shows its file name; without one WhatsApp shows a generic name.
  if (kind === 'document' && isRecord(media) && typeof media.filename === 'string') {
    object.filename = media.filename;
  }
  return { type: kind, [kind]: object };
}

function checkedText(where: string, raw: string, limit: ParamLimitName): string {
  const text = cleanParam(raw);
  if (text === '') throw problem('param_empty', `${where} is empty`);
  const max = PARAM_LIMITS[limit];
  if (codePointLength(text) > max) {
    throw problem('param_too_long', `${where} is longer than ${max} characters`);
  }
  return text;
}

/** "template body expects {{1}}; got 2 values", shaped 'body expects 1 got 2'. */
function expected(where: string, params: string[], got: number): RowProblem {
  const wants = params.length > 0 ? braces(params) : 'no parameter';
  const values = got === 1 ? '1 value' : got === 0 ? 'none' : `${got} values`;
  return mismatch(
    `template ${where} expects ${wants}; got ${values}`,
    `${where} expects ${params.length} got ${got}`,
  );
}

function namesForPositional(where: string, params: string[]): RowProblem {
  return mismatch(
    `template ${where} expects positional values ${braces(params)}; got an object of names`,
    `${where} expects positional got names`,
  );
}

/** Wrong JSON type; a string holding JSON is the classic double-encoding mistake, said so. */
function wrongType(where: string, value: unknown): RowProblem {
  if (typeof value === 'string' && looksLikeJson(value)) {
    return malformed(`${where} is a string holding JSON (double-encoded?); store it as JSON`);
  }
  return malformed(`${where} must be an array or object; got ${typeName(value)}`);
}

function looksLikeJson(s: string): boolean {
  const t = s.trim();
  if (!/^[[{"]/.test(t)) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false; // not JSON: an ordinary string, reported as the wrong type instead
  }
}

function pick(source: Record<string, unknown>, names: string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const name of names) if (name in source) picked[name] = source[name];
  return picked;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function mismatch(message: string, shape?: string): RowProblem {
  return problem('variables_mismatch', message, shape);
}

function malformed(message: string, shape?: string): RowProblem {
  return problem('variables_malformed', message, shape);
}

/**
 * Messages never carry row values, so a message is already the same for every row with the same
 * problem and serves as the shape unless a shorter one is given.
 */
function problem(code: string, message: string, shape = message): RowProblem {
  return new RowProblem({ ok: false, code, message, shape });
}
