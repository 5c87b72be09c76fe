/**
 * Reads a template definition as Meta returns it (the `components` array of the Message
 * Templates API, stored as jsonb) into the list of parameters a send must supply.
 *
 * Anything this module cannot read is a template error for the whole campaign, thrown as
 * `template_invalid`: no recipient row can fix it.
 */
import { usageError } from '../errors.js';

export type ParamFormat = 'positional' | 'named';

export type HeaderSpec =
  | { kind: 'text'; params: string[] }
  | { kind: 'image' | 'video' | 'document' };

export type ButtonSpec =
  | { index: number; kind: 'url'; params: string[] }
  | { index: number; kind: 'quick_reply' }
  | { index: number; kind: 'copy_code' }
  | { index: number; kind: 'other' };

export interface TemplateSpec {
  name: string;
  /** Sent exactly as stored ('en' stays 'en', 'en_US' stays 'en_US'): Meta matches it literally. */
  language: string;
  format: ParamFormat;
  header?: HeaderSpec;
  /** Positional: ['1', '2', …]; named: names in order of first appearance. */
  body: { params: string[] };
  /** Every template button in template order; `index` is the one the send must quote. */
  buttons: ButtonSpec[];
}

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
const POSITIONAL_NAME = /^[1-9][0-9]*$/;
const NAMED_NAME = /^[a-z0-9_]+$/;
const MEDIA_FORMATS = { IMAGE: 'image', VIDEO: 'video', DOCUMENT: 'document' } as const;
const BUTTON_KINDS: Record<string, ButtonSpec['kind']> = {
  URL: 'url',
  QUICK_REPLY: 'quick_reply',
  COPY_CODE: 'copy_code',
};

/** Placeholders of one piece of template text, classified. */
interface Placeholders {
  kind: ParamFormat | 'none';
  params: string[];
}

/**
 * `components` is Meta's component array, or a whole template object carrying `components` and
 * optionally `parameter_format` (NAMED | POSITIONAL). Without `parameter_format` the format is
 * inferred from the placeholders: any `{{name}}` in header or body makes it named.
 */
export function parseTemplate(name: string, language: string, components: unknown): TemplateSpec {
  if (typeof name !== 'string' || name.trim() === '') fail('template name is empty');
  if (typeof language !== 'string' || language.trim() === '') fail('template language is empty');

  const { list, declared } = unwrap(components);
  let header: { spec: HeaderSpec; kind: Placeholders['kind'] } | undefined;
  let body: Placeholders | undefined;
  let buttons: ButtonSpec[] = [];

  for (const [i, component] of list.entries()) {
    if (!isRecord(component)) fail(`component ${i} is not an object`);
    const type = typeof component.type === 'string' ? component.type.toUpperCase() : '';
    if (type === 'HEADER') {
      if (header) fail('template has two HEADER components');
      header = parseHeader(component);
    } else if (type === 'BODY') {
      if (body) fail('template has two BODY components');
      body = placeholdersOf('BODY text', component.text);
    } else if (type === 'BUTTONS') {
      buttons = parseButtons(component.buttons);
    } else if (type !== 'FOOTER') {
      // Footers carry no parameters; anything else (CAROUSEL, LIMITED_TIME_OFFER, …) needs
      // send-side values this tool does not know how to supply.
      fail(`component type ${type || '(missing)'} is not supported`);
    }
  }
  if (!body) fail('template has no BODY component');

  const inferred = header?.kind === 'named' || body.kind === 'named' ? 'named' : 'positional';
  const format = declared ?? inferred;
  for (const [where, kind] of [['HEADER', header?.kind], ['BODY', body.kind]] as const) {
    if (kind !== undefined && kind !== 'none' && kind !== format) {
      fail(`${where} uses ${kind} placeholders but the template's parameter format is ${format}`);
    }
  }
  return { name, language, format, header: header?.spec, body: { params: body.params }, buttons };
}

/** One line naming every value a send needs, e.g. 'body {{1}}, {{2}}; header {{1}}'. */
export function describeParams(spec: TemplateSpec): string {
  const parts: string[] = [];
  if (spec.body.params.length > 0) parts.push(`body ${braces(spec.body.params)}`);
  if (spec.header?.kind === 'text' && spec.header.params.length > 0) {
    parts.push(`header ${braces(spec.header.params)}`);
  } else if (spec.header && spec.header.kind !== 'text') {
    parts.push(`header ${spec.header.kind} link`);
  }
  for (const button of spec.buttons) {
    if (button.kind === 'url' && button.params.length > 0) {
      parts.push(`button ${button.index} url ${braces(button.params)}`);
    } else if (button.kind === 'copy_code') {
      parts.push(`button ${button.index} copy_code coupon code`);
    } else if (button.kind === 'quick_reply') {
      parts.push(`button ${button.index} quick_reply payload (optional)`);
    }
  }
  return parts.length > 0 ? parts.join('; ') : 'no parameters';
}

/** `{{1}}, {{2}}` — how placeholders are named in every message the operator sees. */
export function braces(params: readonly string[]): string {
  return params.map((p) => `{{${p}}}`).join(', ');
}

function unwrap(components: unknown): { list: unknown[]; declared?: ParamFormat } {
  if (Array.isArray(components)) return { list: components };
  if (typeof components === 'string') {
    fail('components is a string, not an array (stored as double-encoded JSON?)');
  }
  if (!isRecord(components) || !Array.isArray(components.components)) {
    fail('components must be an array of template components');
  }
  const declared = components.parameter_format;
  if (declared === undefined || declared === null) return { list: components.components };
  if (declared !== 'NAMED' && declared !== 'POSITIONAL') {
    fail(`parameter_format must be NAMED or POSITIONAL; got ${JSON.stringify(declared)}`);
  }
  return {
    list: components.components,
    declared: declared === 'NAMED' ? 'named' : 'positional',
  };
}

function parseHeader(component: Record<string, unknown>): {
  spec: HeaderSpec;
  kind: Placeholders['kind'];
} {
  const format = typeof component.format === 'string' ? component.format.toUpperCase() : 'TEXT';
  if (format === 'TEXT') {
    const found = placeholdersOf('HEADER text', component.text);
    if (found.params.length > 1) fail('HEADER text has more than one placeholder; Meta allows one');
    return { spec: { kind: 'text', params: found.params }, kind: found.kind };
  }
  if (format in MEDIA_FORMATS) {
    const kind = MEDIA_FORMATS[format as keyof typeof MEDIA_FORMATS];
    return { spec: { kind }, kind: 'none' };
  }
  fail(`HEADER format ${format} is not supported (supported: TEXT, IMAGE, VIDEO, DOCUMENT)`);
}

function parseButtons(buttons: unknown): ButtonSpec[] {
  if (!Array.isArray(buttons)) fail('BUTTONS component has no buttons array');
  return buttons.map((button, index): ButtonSpec => {
    if (!isRecord(button)) fail(`button ${index} is not an object`);
    const type = typeof button.type === 'string' ? button.type.toUpperCase() : '';
    const kind = BUTTON_KINDS[type] ?? 'other';
    if (kind !== 'url') return { index, kind };

    // URL buttons take their one placeholder at the end of the URL, {{1}} even in templates
    // with named body parameters, so their kind is not held to the template's format.
    const found = placeholdersOf(`button ${index} url`, button.url);
    if (found.params.length > 1) fail(`button ${index} url has more than one placeholder`);
    return { index, kind, params: found.params };
  });
}

/**
 * Positional placeholders must run {{1}}..{{n}} (repeats allowed); named ones are listed once, in
 * order of first appearance. One piece of text may not mix the two kinds.
 */
function placeholdersOf(where: string, text: unknown): Placeholders {
  if (text === undefined || text === null) return { kind: 'none', params: [] };
  if (typeof text !== 'string') fail(`${where} is not a string`);

  const names = [...text.matchAll(PLACEHOLDER)].map((m) => m[1] ?? '');
  const positional = names.filter((n) => POSITIONAL_NAME.test(n));
  const named = names.filter((n) => !POSITIONAL_NAME.test(n) && NAMED_NAME.test(n));
  const bad = names.find((n) => !POSITIONAL_NAME.test(n) && !NAMED_NAME.test(n));
  if (bad !== undefined) {
    fail(`${where} has placeholder {{${bad}}}: expected {{1}} or {{lower_case_name}}`);
  }
  if (positional.length > 0 && named.length > 0) {
    fail(`${where} mixes positional and named placeholders`);
  }
  if (named.length > 0) return { kind: 'named', params: [...new Set(named)] };
  if (positional.length === 0) return { kind: 'none', params: [] };

  const numbers = [...new Set(positional.map(Number))].sort((a, b) => a - b);
  if (numbers.some((n, i) => n !== i + 1)) {
    const found = braces(numbers.map(String));
    fail(`${where} placeholders must run {{1}}..{{${numbers.length}}}; found ${found}`);
  }
  return { kind: 'positional', params: numbers.map(String) };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(message: string): never {
  throw usageError('template_invalid', message);
}
