/**
 * Checks a send request's body the way the Cloud API does, and answers with Meta's codes: a
 * missing part is 131008, a present but wrong one is 100, a text parameter with new-lines, tabs
 * or more than four spaces in a row is 132018. Hand-written rather than zod because it sits on
 * the hot path and each fault needs Meta's own wording in `error_data.details`.
 */
import type { TemplateSpec } from './scenario.js';

export interface TemplateSend {
  to: string;
  template: string;
  language: string;
  components: unknown[];
}

export interface Fault {
  code: number;
  details: string;
}

type Obj = Record<string, unknown>;

const PARAM_TYPES = new Set([
  'text', 'currency', 'date_time', 'image', 'document', 'video', 'location', 'payload',
  'coupon_code', 'action',
]);
const COMPONENT_TYPES = new Set(['header', 'body', 'button']);
const RECIPIENT = /^\d{6,15}$/;
const PARAMETER_NAME = /^[a-z0-9_]+$/;
const BAD_TEXT = /[\n\t]| {5}/;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isFilled(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

const missing = (what: string): Fault => ({ code: 131008, details: `${what} is required` });
const invalid = (details: string): Fault => ({ code: 100, details });

export function isFault(v: TemplateSend | Fault | undefined): v is Fault {
  return v !== undefined && 'code' in v;
}

/** Returns the send's essentials, or the first fault Meta would report. */
export function validateSend(body: unknown): TemplateSend | Fault {
  if (!isObj(body)) return invalid('The request body must be a JSON object');
  if (body.messaging_product === undefined) {
    return invalid('The parameter messaging_product is required.');
  }
  if (body.messaging_product !== 'whatsapp') {
    return invalid("Param messaging_product must be 'whatsapp'");
  }
  if (body.recipient_type !== undefined && body.recipient_type !== 'individual') {
    return invalid("Param recipient_type must be 'individual'");
  }
  if (body.to === undefined) return invalid('The parameter to is required.');
  if (typeof body.to !== 'string' || !RECIPIENT.test(body.to)) {
    return invalid('Param to must be the phone number as 6 to 15 digits (E.164 without +)');
  }
  if (body.type !== 'template') {
    return invalid("Param type must be 'template' (the sandbox fakes template messages only)");
  }
  return validateTemplate(body.to, body.template);
}

function validateTemplate(to: string, template: unknown): TemplateSend | Fault {
  if (!isObj(template)) return missing('Parameter template');
  if (!isFilled(template.name)) return missing('template.name');
  const language = template.language;
  if (!isObj(language) || !isFilled(language.code)) return missing('template.language.code');

  const components = template.components ?? [];
  if (!Array.isArray(components)) return invalid('template.components must be an array');
  for (let i = 0; i < components.length; i++) {
    const fault = validateComponent(components[i], `template.components[${i}]`);
    if (fault) return fault;
  }
  return { to, template: template.name, language: language.code, components };
}

function validateComponent(component: unknown, at: string): Fault | undefined {
  if (!isObj(component)) return invalid(`${at} must be an object`);
  const type = typeof component.type === 'string' ? component.type.toLowerCase() : undefined;
  if (type === undefined) return missing(`${at}.type`);
  if (!COMPONENT_TYPES.has(type)) return invalid(`${at}.type must be header, body or button`);
  if (type === 'button') {
    if (!isFilled(component.sub_type)) return missing(`${at}.sub_type`);
    if (!/^\d$/.test(String(component.index ?? ''))) {
      return missing(`${at}.index (a button position from 0 to 9)`);
    }
  }

  const params = component.parameters ?? [];
  if (!Array.isArray(params)) return invalid(`${at}.parameters must be an array`);
  const names = new Set<string>();
  for (let j = 0; j < params.length; j++) {
    const fault = validateParameter(params[j], `${at}.parameters[${j}]`);
    if (fault) return fault;
    const name = (params[j] as Obj).parameter_name;
    if (typeof name === 'string') {
      if (names.has(name)) return invalid(`${at}: parameter_name '${name}' is given twice`);
      names.add(name);
    }
  }
  if (names.size > 0 && names.size < params.length) {
    return invalid(`${at}: mix of named and positional parameters; name every one or none`);
  }
  return undefined;
}

function validateParameter(param: unknown, at: string): Fault | undefined {
  if (!isObj(param)) return invalid(`${at} must be an object`);
  if (!isFilled(param.type)) return missing(`${at}.type`);
  if (!PARAM_TYPES.has(param.type)) {
    return invalid(`${at}.type '${param.type}' is not one of ${[...PARAM_TYPES].join(', ')}`);
  }
  if (param.parameter_name !== undefined) {
    if (typeof param.parameter_name !== 'string' || !PARAMETER_NAME.test(param.parameter_name)) {
      return invalid(`${at}.parameter_name must be lowercase letters, digits and underscores`);
    }
  }
  return validateValue(param, param.type, at);
}

/** Each parameter type carries its value under a key of the same name. */
function validateValue(param: Obj, type: string, at: string): Fault | undefined {
  const value = param[type];
  switch (type) {
    case 'text':
      if (!isFilled(value)) return missing(`${at}.text (non-empty)`);
      if (BAD_TEXT.test(value)) {
        return {
          code: 132018,
          details: `${at}.text: Param text cannot have new-line/tab characters ` +
            'or more than 4 consecutive spaces',
        };
      }
      return undefined;
    case 'payload':
    case 'coupon_code':
      return isFilled(value) ? undefined : missing(`${at}.${type}`);
    case 'currency':
      if (!isObj(value)) return missing(`${at}.currency`);
      if (!isFilled(value.fallback_value) || !isFilled(value.code)) {
        return missing(`${at}.currency.fallback_value and .code`);
      }
      return Number.isInteger(value.amount_1000)
        ? undefined
        : missing(`${at}.currency.amount_1000 (an integer)`);
    case 'date_time':
      return isObj(value) && isFilled(value.fallback_value)
        ? undefined
        : missing(`${at}.date_time.fallback_value`);
    case 'image':
    case 'document':
    case 'video':
      return isObj(value) && (isFilled(value.link) || isFilled(value.id))
        ? undefined
        : missing(`${at}.${type}.link or .${type}.id`);
    default:
      return isObj(value) ? undefined : missing(`${at}.${type}`);
  }
}

/**
 * With a scenario's template list: an unknown template or language is 132001, a named parameter
 * the template lacks is 100, and a body parameter count that differs is 132000.
 */
export function checkTemplate(
  send: TemplateSend,
  templates: readonly TemplateSpec[],
): Fault | undefined {
  const spec = templates.find((t) => t.name === send.template && t.language === send.language);
  if (!spec) {
    return {
      code: 132001,
      details: `template name (${send.template}) does not exist in ${send.language}`,
    };
  }

  const body = send.components.find((c) => String((c as Obj).type).toLowerCase() === 'body');
  const params = ((body as Obj | undefined)?.parameters ?? []) as Obj[];
  if (spec.parameterNames) {
    for (const param of params) {
      const name = param.parameter_name;
      if (typeof name !== 'string') {
        return invalid(`Template ${spec.name} has named parameters: parameter_name is missing`);
      }
      if (!spec.parameterNames.includes(name)) {
        return invalid(`Parameter name '${name}' does not exist in template ${spec.name}`);
      }
    }
  }

  const expected = spec.bodyParams ?? spec.parameterNames?.length;
  if (expected !== undefined && params.length !== expected) {
    return {
      code: 132000,
      details: `body: number of localizable_params (${params.length}) does not match the ` +
        `expected number of params (${expected})`,
    };
  }
  return undefined;
}
