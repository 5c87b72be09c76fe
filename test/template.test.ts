import { describe, expect, it } from 'vitest';
import { WacampError } from '../src/errors.js';
import { describeParams, parseTemplate, type TemplateSpec } from '../src/template/definition.js';
import { renderComponents, type RenderResult } from '../src/template/render.js';
import { cleanParam, codePointLength, PARAM_LIMITS } from '../src/template/text.js';

const ORDER_SHIPPED = [
  { type: 'HEADER', format: 'TEXT', text: 'Hi {{1}}' },
  { type: 'BODY', text: 'Hi {{1}}, order {{2}} ships today' },
  { type: 'FOOTER', text: 'Reply STOP to opt out' },
  {
    type: 'BUTTONS',
    buttons: [
      { type: 'URL', text: 'Track', url: 'https://x.com/t/{{1}}' },
      { type: 'QUICK_REPLY', text: 'Stop' },
      { type: 'COPY_CODE', example: 'ABC' },
    ],
  },
];

const NAMED_BODY = [
  { type: 'HEADER', format: 'TEXT', text: 'Hello {{first_name}}' },
  { type: 'BODY', text: 'Hi {{customer_name}}, order {{order_id}} for {{customer_name}}' },
];

const bodyOnly = (text: string) => parseTemplate('t', 'en', [{ type: 'BODY', text }]);
const withHeader = (format: string) =>
  parseTemplate('t', 'en', [{ type: 'HEADER', format }, { type: 'BODY', text: 'Hi' }]);

function rendered(spec: TemplateSpec, variables: unknown): unknown[] {
  const result = renderComponents(spec, variables);
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.components;
}

/** The text of the first parameter of the first component. */
function firstText(spec: TemplateSpec, variables: unknown): unknown {
  const [component] = rendered(spec, variables) as Array<{ parameters: Array<{ text?: string }> }>;
  return component?.parameters[0]?.text;
}

function failure(spec: TemplateSpec, variables: unknown): Extract<RenderResult, { ok: false }> {
  const result = renderComponents(spec, variables);
  if (result.ok) throw new Error('expected a failure');
  return result;
}

function templateError(components: unknown): WacampError {
  try {
    parseTemplate('t', 'en_US', components);
  } catch (err) {
    if (err instanceof WacampError) return err;
    throw err;
  }
  throw new Error('expected parseTemplate to throw');
}

describe('parseTemplate', () => {
  it('reads header, body and buttons of a positional template', () => {
    expect(parseTemplate('order_shipped', 'en_US', ORDER_SHIPPED)).toEqual({
      name: 'order_shipped',
      language: 'en_US',
      format: 'positional',
      header: { kind: 'text', params: ['1'] },
      body: { params: ['1', '2'] },
      buttons: [
        { index: 0, kind: 'url', params: ['1'] },
        { index: 1, kind: 'quick_reply' },
        { index: 2, kind: 'copy_code' },
      ],
    });
  });

  it('keeps the language exactly as stored', () => {
    expect(bodyOnly('Hi').language).toBe('en');
    expect(parseTemplate('t', 'pt_BR', [{ type: 'BODY', text: 'Oi' }]).language).toBe('pt_BR');
  });

  it('infers named placeholders, each listed once in order of first appearance', () => {
    const spec = parseTemplate('t', 'en', NAMED_BODY);
    expect(spec.format).toBe('named');
    expect(spec.body.params).toEqual(['customer_name', 'order_id']);
    expect(spec.header).toEqual({ kind: 'text', params: ['first_name'] });
  });

  it('takes parameter_format from a whole template object', () => {
    const spec = parseTemplate('t', 'en', {
      parameter_format: 'NAMED',
      components: [{ type: 'BODY', text: 'No placeholders at all' }],
    });
    expect(spec.format).toBe('named');
    expect(spec.body.params).toEqual([]);
  });

  it('allows a positional placeholder to repeat and lower-case component types', () => {
    expect(bodyOnly('{{1}} and {{2}} and {{1}} again').body.params).toEqual(['1', '2']);
    expect(parseTemplate('t', 'en', [{ type: 'body', text: '{{1}}' }]).body.params).toEqual(['1']);
  });

  it('reads media headers and classifies every kind of button', () => {
    expect(withHeader('IMAGE').header).toEqual({ kind: 'image' });
    expect(withHeader('VIDEO').header).toEqual({ kind: 'video' });
    expect(withHeader('DOCUMENT').header).toEqual({ kind: 'document' });
    const spec = parseTemplate('t', 'en', [
      { type: 'BODY', text: 'Hi' },
      {
        type: 'BUTTONS',
        buttons: [
          { type: 'PHONE_NUMBER', text: 'Call', phone_number: '+12025550143' },
          { type: 'URL', text: 'Site', url: 'https://x.com/static' },
        ],
      },
    ]);
    expect(spec.buttons).toEqual([
      { index: 0, kind: 'other' },
      { index: 1, kind: 'url', params: [] },
    ]);
  });

  it.each([
    ['a LOCATION header', [{ type: 'HEADER', format: 'LOCATION' }, { type: 'BODY', text: 'x' }]],
    ['mixed kinds in one component', [{ type: 'BODY', text: '{{1}} and {{name}}' }]],
    ['a gap in positional numbering', [{ type: 'BODY', text: '{{1}} and {{3}}' }]],
    ['a placeholder that is neither kind', [{ type: 'BODY', text: 'Hi {{First Name}}' }]],
    ['two placeholders in a text header', [
      { type: 'HEADER', format: 'TEXT', text: '{{1}} {{2}}' },
      { type: 'BODY', text: 'x' },
    ]],
    ['a named header over a positional body', [
      { type: 'HEADER', format: 'TEXT', text: '{{name}}' },
      { type: 'BODY', text: '{{1}}' },
    ]],
    ['a declared format the placeholders contradict', {
      parameter_format: 'POSITIONAL',
      components: [{ type: 'BODY', text: '{{name}}' }],
    }],
    ['an unknown parameter_format', { parameter_format: 'FOO', components: [] }],
    ['an unsupported component', [{ type: 'CAROUSEL', cards: [] }, { type: 'BODY', text: 'x' }]],
    ['no body', [{ type: 'HEADER', format: 'TEXT', text: 'x' }]],
    ['two bodies', [{ type: 'BODY', text: 'x' }, { type: 'BODY', text: 'y' }]],
    ['a body text that is not a string', [{ type: 'BODY', text: 42 }]],
    ['a URL with two placeholders', [
      { type: 'BODY', text: 'x' },
      { type: 'BUTTONS', buttons: [{ type: 'URL', url: 'https://x.com/{{1}}/{{2}}' }] },
    ]],
    ['buttons that are not an array', [{ type: 'BODY', text: 'x' }, { type: 'BUTTONS' }]],
    ['a component that is not an object', ['BODY']],
    ['components stored as a JSON string', JSON.stringify([{ type: 'BODY', text: 'x' }])],
    ['components that are not an array', { type: 'BODY', text: 'x' }],
    ['null', null],
  ])('refuses %s as template_invalid (exit 2)', (_label, components) => {
    const err = templateError(components);
    expect(err.code).toBe('template_invalid');
    expect(err.exitCode).toBe(2);
    expect(err.message).not.toContain('\n');
  });

  it('refuses an empty name or language', () => {
    expect(() => parseTemplate('', 'en', [{ type: 'BODY', text: 'x' }])).toThrow(WacampError);
    expect(() => parseTemplate('t', ' ', [{ type: 'BODY', text: 'x' }])).toThrow(/language/);
  });
});

describe('describeParams', () => {
  it('names every value a send needs', () => {
    expect(describeParams(parseTemplate('t', 'en', ORDER_SHIPPED))).toBe(
      'body {{1}}, {{2}}; header {{1}}; button 0 url {{1}}; ' +
        'button 1 quick_reply payload (optional); button 2 copy_code coupon code',
    );
    expect(describeParams(withHeader('IMAGE'))).toBe('header image link');
    expect(describeParams(bodyOnly('Hello'))).toBe('no parameters');
  });
});

describe('renderComponents', () => {
  const positional = parseTemplate('order_shipped', 'en_US', ORDER_SHIPPED);
  const named = parseTemplate('t', 'en', NAMED_BODY);
  const twoParams = bodyOnly('Hi {{1}}, order {{2}}');

  it('renders a positional body from an array', () => {
    expect(rendered(twoParams, ['Ann', 42])).toEqual([
      {
        type: 'body',
        parameters: [
          { type: 'text', text: 'Ann' },
          { type: 'text', text: '42' },
        ],
      },
    ]);
  });

  it('renders header, body and every button kind in template order', () => {
    const buttons = ['A-17', 'stop-17', 'SAVE10'];
    const variables = { header: 'Ann', body: ['Ann', 'A-17'], buttons };
    expect(rendered(positional, variables)).toEqual([
      { type: 'header', parameters: [{ type: 'text', text: 'Ann' }] },
      {
        type: 'body',
        parameters: [
          { type: 'text', text: 'Ann' },
          { type: 'text', text: 'A-17' },
        ],
      },
      { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: 'A-17' }] },
      {
        type: 'button',
        sub_type: 'quick_reply',
        index: '1',
        parameters: [{ type: 'payload', payload: 'stop-17' }],
      },
      {
        type: 'button',
        sub_type: 'copy_code',
        index: '2',
        parameters: [{ type: 'coupon_code', coupon_code: 'SAVE10' }],
      },
    ]);
  });

  it('leaves out a quick reply without a payload, and components without parameters', () => {
    const components = rendered(positional, {
      header: 'Ann',
      body: ['Ann', 'A-17'],
      buttons: ['A-17', null, 'SAVE10'],
    });
    expect(components.map((c) => (c as { sub_type?: string }).sub_type ?? 'x')).toEqual([
      'x',
      'x',
      'url',
      'copy_code',
    ]);
    expect(rendered(bodyOnly('No parameters'), null)).toEqual([]);
    expect(rendered(bodyOnly('No parameters'), [])).toEqual([]);
    expect(rendered(bodyOnly('No parameters'), {})).toEqual([]);
  });

  it('puts parameter_name on every parameter of a named template, header included', () => {
    const flat = { first_name: 'Ann', customer_name: 'Ann Lee', order_id: 'A-17' };
    const expected = [
      {
        type: 'header',
        parameters: [{ type: 'text', text: 'Ann', parameter_name: 'first_name' }],
      },
      {
        type: 'body',
        parameters: [
          { type: 'text', text: 'Ann Lee', parameter_name: 'customer_name' },
          { type: 'text', text: 'A-17', parameter_name: 'order_id' },
        ],
      },
    ];
    expect(rendered(named, flat)).toEqual(expected);
    const structured = { header: 'Ann', body: { order_id: 'A-17', customer_name: 'Ann Lee' } };
    expect(rendered(named, structured)).toEqual(expected);
  });

  it('lets a flat named object carry buttons and a media header', () => {
    const spec = parseTemplate('t', 'en', [
      { type: 'HEADER', format: 'IMAGE' },
      { type: 'BODY', text: 'Hi {{customer_name}}' },
      { type: 'BUTTONS', buttons: [{ type: 'URL', url: 'https://x.com/o/{{1}}' }] },
    ]);
    const link = 'https://cdn.example.com/a.png';
    expect(rendered(spec, { customer_name: 'Ann', header: link, buttons: ['A-17'] })).toEqual([
      { type: 'header', parameters: [{ type: 'image', image: { link } }] },
      {
        type: 'body',
        parameters: [{ type: 'text', text: 'Ann', parameter_name: 'customer_name' }],
      },
      { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: 'A-17' }] },
    ]);
    // A text header's value travels under its name, so a stray `header` key is a mismatch.
    expect(failure(named, { first_name: 'A', customer_name: 'B', order_id: 'C', header: 'D' }))
      .toMatchObject({ code: 'variables_mismatch', shape: 'unexpected header' });
  });

  it('reads a flat object even when a named parameter is called body', () => {
    const spec = bodyOnly('Your {{body}} is ready');
    expect(rendered(spec, { body: 'car' })).toEqual([
      { type: 'body', parameters: [{ type: 'text', text: 'car', parameter_name: 'body' }] },
    ]);
  });

  it('renders typed currency and date_time parameters', () => {
    const price = { type: 'currency', fallback_value: '$12.50', code: 'USD', amount_1000: 12500 };
    const when = { type: 'date_time', fallback_value: 'May 1, 2026' };
    expect(rendered(twoParams, [price, when])).toEqual([
      {
        type: 'body',
        parameters: [
          {
            type: 'currency',
            currency: { fallback_value: '$12.50', code: 'USD', amount_1000: 12500 },
          },
          { type: 'date_time', date_time: { fallback_value: 'May 1, 2026' } },
        ],
      },
    ]);
    const namedPrice = rendered(bodyOnly('Total {{total}}'), { total: price });
    expect(namedPrice[0]).toMatchObject({
      parameters: [{ type: 'currency', parameter_name: 'total' }],
    });
  });

  it('renders image, video and document headers from each accepted shape', () => {
    const link = 'https://cdn.example.com/a.jpg';
    const image = withHeader('IMAGE');
    const expected = [{ type: 'header', parameters: [{ type: 'image', image: { link } }] }];
    expect(rendered(image, { header: link })).toEqual(expected);
    expect(rendered(image, { header: { link } })).toEqual(expected);
    expect(rendered(image, { header: { image: { link } } })).toEqual(expected);
    expect(rendered(withHeader('VIDEO'), { header: link })).toEqual([
      { type: 'header', parameters: [{ type: 'video', video: { link } }] },
    ]);
    const doc = { document: { link: 'https://x.com/i.pdf', filename: 'invoice.pdf' } };
    expect(rendered(withHeader('DOCUMENT'), { header: doc })).toEqual([
      { type: 'header', parameters: [{ type: 'document', document: doc.document }] },
    ]);
  });

  it('cleans values the way Meta requires before checking them', () => {
    const spec = bodyOnly('{{1}}');
    const text = (value: string) => firstText(spec, [value]);
    expect(text('  line one\nline two\r\n\tend  ')).toBe('line one line two end');
    expect(text('a    b')).toBe('a    b');
    expect(text('a     b')).toBe('a b');
  });

  it('counts emoji and astral characters as one and never splits them', () => {
    const spec = bodyOnly('{{1}}');
    const smile = '😀';
    const atLimit = smile.repeat(PARAM_LIMITS.bodyText);
    expect(firstText(spec, [atLimit])).toBe(atLimit);
    expect(failure(spec, [atLimit + smile]).code).toBe('param_too_long');
    const header = parseTemplate('t', 'en', [
      { type: 'HEADER', format: 'TEXT', text: '{{1}}' },
      { type: 'BODY', text: 'x' },
    ]);
    expect(renderComponents(header, { header: '𝄞'.repeat(60) }).ok).toBe(true);
    expect(failure(header, { header: 'a'.repeat(61) })).toMatchObject({
      code: 'param_too_long',
      message: 'header {{1}} is longer than 60 characters',
    });
  });

  describe('refuses bad rows with a stable code and shape', () => {
    it('variables_mismatch: counts that differ from the template', () => {
      const oneParam = bodyOnly('Hi {{1}}');
      expect(failure(oneParam, ['Ann', 'Bob'])).toEqual({
        ok: false,
        code: 'variables_mismatch',
        message: 'template body expects {{1}}; got 2 values',
        shape: 'body expects 1 got 2',
      });
      expect(failure(oneParam, null)).toMatchObject({ shape: 'body expects 1 got 0' });
      expect(failure(bodyOnly('Hi'), ['x'])).toMatchObject({
        message: 'template body expects no parameter; got 1 value',
      });
    });

    it('variables_mismatch: names that differ from a named template', () => {
      const wrong = { first_name: 'A', customer_name: 'B', order_no: 'C' };
      expect(failure(named, wrong)).toMatchObject({
        code: 'variables_mismatch',
        message: 'template has no parameter {{order_no}}; it has ' +
          '{{customer_name}}, {{order_id}}, {{first_name}}',
      });
      expect(failure(named, { header: 'A', body: { customer_name: 'B' } })).toMatchObject({
        message: 'template body expects {{customer_name}}, {{order_id}}; missing {{order_id}}',
      });
      expect(failure(named, ['A', 'B']).code).toBe('variables_mismatch');
      expect(failure(twoParams, { a: 'x', b: 'y' }).code).toBe('variables_mismatch');
    });

    it('variables_mismatch: headers and buttons', () => {
      const good = { header: 'Ann', body: ['Ann', 'A-17'], buttons: ['A-17', null, 'SAVE10'] };
      expect(failure(positional, { ...good, header: undefined })).toMatchObject({
        message: 'template header expects {{1}}; got none',
      });
      expect(failure(positional, { ...good, buttons: [null, null, 'SAVE10'] })).toMatchObject({
        shape: 'button 0 (url) expects 1 got 0',
      });
      expect(failure(positional, { ...good, buttons: ['A-17'] })).toMatchObject({
        message: 'template button 2 (copy_code) expects a coupon code; got none',
      });
      expect(failure(positional, { ...good, buttons: ['A', 'B', 'C', 'D'] })).toMatchObject({
        shape: 'buttons expects 3 got 4',
      });
      expect(failure(twoParams, { header: 'x', body: ['a', 'b'] }).code).toBe('variables_mismatch');
    });

    it('variables_malformed: wrong JSON types, double encoding, missing links', () => {
      const dollar = { type: 'currency', fallback_value: '$1', code: 'USD', amount_1000: 1000 };
      const cases: Array<[TemplateSpec, unknown, RegExp]> = [
        [twoParams, JSON.stringify(['Ann', 'A-17']), /double-encoded/],
        [twoParams, '"Ann"', /double-encoded/],
        [twoParams, 'Ann', /must be an array or object; got a string/],
        [twoParams, 42, /got a number/],
        [twoParams, { body: JSON.stringify(['a', 'b']) }, /body is a string holding JSON/],
        [twoParams, ['Ann', true], /body \{\{2\}\} is a boolean/],
        [twoParams, ['Ann', { name: 'x' }], /is an object/],
        [twoParams, ['Ann', Number.NaN], /is a number/],
        [twoParams, ['Ann', { ...dollar, code: 'usd' }], /ISO 4217/],
        [twoParams, ['Ann', { ...dollar, amount_1000: 1.5 }], /amount_1000/],
        [twoParams, ['Ann', { type: 'date_time' }], /fallback_value/],
        [withHeader('IMAGE'), null, /needs a link; got none/],
        [withHeader('IMAGE'), { header: { id: '123' } }, /needs a link/],
        [withHeader('IMAGE'), { header: 'ftp://x.com/a.jpg' }, /not an http\(s\) URL/],
        [positional, { header: 'A', body: ['A', 'B'], buttons: 'A-17' }, /buttons must be/],
        [positional, { header: 'A', body: ['A', 'B'], buttons: [['x'], null, 'C'] }, /string/],
      ];
      for (const [spec, variables, message] of cases) {
        const result = failure(spec, variables);
        expect(result.code).toBe('variables_malformed');
        expect(result.message).toMatch(message);
      }
    });

    it('param_empty: nothing left after cleaning, or null', () => {
      for (const value of ['', '   ', '\n\t', null]) {
        expect(failure(twoParams, ['Ann', value])).toMatchObject({
          code: 'param_empty',
          message: 'body {{2}} is empty',
        });
      }
      const spec = parseTemplate('t', 'en', ORDER_SHIPPED);
      expect(failure(spec, { header: 'A', body: ['A', 'B'], buttons: [' ', null, 'C'] }))
        .toMatchObject({ code: 'param_empty', message: 'button 0 (url) is empty' });
    });

    it('param_too_long: each limit in code points', () => {
      expect(failure(twoParams, ['Ann', 'x'.repeat(1025)])).toMatchObject({
        code: 'param_too_long',
        shape: 'body {{2}} is longer than 1024 characters',
      });
      const row = { header: 'A', body: ['A', 'B'] };
      expect(failure(positional, { ...row, buttons: ['x', null, 'C'.repeat(21)] })).toMatchObject({
        code: 'param_too_long',
        message: 'button 2 (copy_code) is longer than 20 characters',
      });
      expect(failure(positional, { ...row, header: 'h'.repeat(61), buttons: ['x', null, 'C'] }))
        .toMatchObject({ shape: 'header {{1}} is longer than 60 characters' });
      const url = 'u'.repeat(PARAM_LIMITS.urlSuffix + 1);
      const longUrl = failure(positional, { ...row, buttons: [url, null, 'C'] });
      expect(longUrl.code).toBe('param_too_long');
    });

    it('gives rows with the same problem the same shape, and never echoes values', () => {
      const oneParam = bodyOnly('Hi {{1}}');
      const a = failure(oneParam, ['Alice Private', '+1 202 555 0143']);
      const b = failure(oneParam, ['Bob Secret', 'b@example.com']);
      expect(a.shape).toBe(b.shape);
      expect(a.message).toBe(b.message);
      for (const secret of ['Alice', '0143', 'Bob', 'example']) {
        expect(`${a.message} ${b.message}`).not.toContain(secret);
      }
    });
  });

  it('never throws on odd row data', () => {
    const odd: unknown[] = [
      undefined, null, 0, -1, true, '', '[]', '{', [], {}, [[]], [{}], [null], [undefined],
      { header: [] }, { header: {} }, { body: {} }, { buttons: {} }, { buttons: [[], {}] },
      { header: { image: 'x' } }, { body: [Infinity] }, Object.create(null), ['a'.repeat(1e5)],
    ];
    for (const spec of [positional, named, twoParams, withHeader('DOCUMENT')]) {
      for (const variables of odd) {
        expect(typeof renderComponents(spec, variables).ok).toBe('boolean');
      }
    }
  });
});

describe('text rules', () => {
  it('cleanParam follows Meta: no newlines or tabs, no more than four spaces in a row', () => {
    expect(cleanParam('a\n\nb')).toBe('a b');
    expect(cleanParam('a\tb')).toBe('a b');
    expect(cleanParam('a  \n  b')).toBe('a b');
    expect(cleanParam('a    b')).toBe('a    b');
    expect(cleanParam(' \u2028x\u2029 ')).toBe('x');
  });

  it('codePointLength counts characters, not UTF-16 units', () => {
    expect(codePointLength('')).toBe(0);
    expect(codePointLength('abc')).toBe(3);
    expect(codePointLength('a😀b')).toBe(3);
    expect('😀'.length).toBe(2);
    expect(codePointLength('\ud83d')).toBe(1); // a lone surrogate still counts once
    expect(codePointLength('é')).toBe(1);
  });
});
