// The byte-level check behind the JSON pass-through: a line it accepts must be
// exactly what JSON.stringify(JSON.parse(line)) gives back, or output would change.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVerbatimJson } from '../../src/io/json-verbatim.js';

const accepts = (text: string) => {
  const bytes = Buffer.from(`${text}\n`);
  return isVerbatimJson(bytes, 0, bytes.length - 1);
};

function roundTrips(text: string): boolean {
  try {
    return JSON.stringify(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}

/** JSON text built from pieces that are often not in JSON.stringify's form. */
const tricky = fc.letrec((tie) => ({
  number: fc.oneof(
    fc.constantFrom('0', '-0', '1', '-1', '10', '01', '1.0', '1.5', '-1.5', '1.50', '0.1', '0.000001', '0.0000001', '0.00000123',
      '1e3', '1E3', '1e-7', '123456789012345', '1234567890123456', '12345678901234567890', '0.123456789012345',
      '0.1234567890123456', '9007199254740993', '1.', '.5', '-', '--1', '+1', '0x10', 'NaN', 'Infinity', '1_000'),
    fc.integer().map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  ),
  string: fc
    .array(
      fc.oneof(
        fc.constantFrom('a', 'é', '€', '😀', '\u2028', '\u007f', '\\"', '\\\\', '\\/', '\\b', '\\f', '\\n', '\\r', '\\t', '\\u0041', '\\u001f',
          '\\u001F', '\\u0000', '\\u0008', '\\u000a', '\\u000b', '\\ud800', '\\ud83d\\ude00', '\\uDFFF', '\\x41', '\\', '\t', '"', ' '),
        fc.string({ maxLength: 3 }),
      ),
      { maxLength: 5 },
    )
    .map((parts) => `"${parts.join('')}"`),
  key: fc.oneof(fc.constantFrom('"a"', '"b"', '"0"', '"1"', '"01"', '"4294967295"', '"-1"', '"1a"', '""', '"__proto__"', '"a\\u0041"', '"aA"'), tie('string')),
  literal: fc.constantFrom('true', 'false', 'null', 'nul', 'True', 'undefined'),
  space: fc.constantFrom('', '', '', '', ' ', '\t', '\r'),
  value: fc.oneof({ depthSize: 'small' }, tie('number'), tie('string'), tie('literal'), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }).chain((items) =>
    fc.tuple(fc.constant(items), tie('space')).map(([list, space]) => `[${space}${(list as string[]).join(`${space},`)}]`),
  ),
  object: fc.array(fc.tuple(tie('key'), tie('value')), { maxLength: 4 }).chain((entries) =>
    tie('space').map((space) => `{${(entries as [string, string][]).map(([k, v]) => `${k}${space}:${v}`).join(',')}}`),
  ),
}));

describe('isVerbatimJson', () => {
  it('never accepts a line that JSON.stringify(JSON.parse()) would change', () => {
    fc.assert(
      fc.property(tricky.value as fc.Arbitrary<string>, (text) => {
        if (accepts(text)) expect(roundTrips(text), text).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it('never accepts cut or mutated canonical JSON that would change', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), fc.string({ maxLength: 2 }), (value, at, insert) => {
        const text = JSON.stringify(value);
        const cut = at % (text.length + 1);
        for (const variant of [text.slice(0, cut), text.slice(0, cut) + insert + text.slice(cut), text.slice(0, cut) + text.slice(cut + 1)]) {
          if (accepts(variant)) expect(roundTrips(variant), variant).toBe(true);
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it('accepts what JSON.stringify writes, bar the forms it leaves to the normal path', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const text = JSON.stringify(value);
        if (accepts(text)) accepted++;
      }),
      { numRuns: 2_000 },
    );
    // Numbers of more than 15 digits, integer-like keys and \u escapes of lone surrogates are left out.
    expect(accepted).toBeGreaterThan(600);
  });

  it.each([
    ['{"a":1,"b":[true,false,null],"c":{"d":"e"}}', true],
    ['{"@timestamp":"2026-11-22T00:00:00.000Z","duration_ms":26.4,"pid":1063}', true],
    ['"tab\\there, quote \\" and \\\\ and \\u001f"', true],
    ['[]', true],
    ['{}', true],
    ['{"":1,"a":{"":2}}', true],
    ['{"":1,"":2}', false],
    ['-0.5', true],
    ['0.000001', true],
    ['{"a": 1}', false],
    [' {"a":1}', false],
    ['{"a":1} ', false],
    ['{"a":1}\r', false],
    ['{"a":1,"a":2}', false],
    ['{"b":1,"1":2}', false],
    ['"\\/"', false],
    ['"\\u0041"', false],
    ['"\\u000a"', false],
    ['"\\u001F"', false],
    ['1.0', false],
    ['1e3', false],
    ['-0', false],
    ['0.0000001', false],
    ['12345678901234567', false],
    ['1700000000000000000', true],
    ['123456789012345678', false],
    ['1e-7', true],
    ['1e+21', true],
    ['1e21', false],
    ['1E-7', false],
    ['1e400', false],
    ['-1e400', false],
    ['1.7976931348623157e+308', true],
    ['0.30000000000000004', true],
    ['1e', false],
    ['1e+', false],
    ['01', false],
    ['-', false],
    ['{"a":1', false],
    ['{"a":1}}', false],
    ['[1,]', false],
    ['tru', false],
    ['', false],
  ])('%s: %s', (text, expected) => {
    expect(accepts(text)).toBe(expected);
    if (expected) expect(roundTrips(text)).toBe(true);
  });

  it('does not read past the end it is given', () => {
    const bytes = Buffer.from('{"a":[1}]');
    expect(isVerbatimJson(bytes, 0, 7)).toBe(false);
    expect(isVerbatimJson(Buffer.from('[1]]'), 0, 2)).toBe(false);
    expect(isVerbatimJson(Buffer.from('"ab"'), 0, 3)).toBe(false);
    expect(isVerbatimJson(Buffer.from('truex'), 0, 3)).toBe(false);
    expect(isVerbatimJson(Buffer.from('x[1]x'), 1, 4)).toBe(true);
  });

  it('leaves very deep nesting to the normal path', () => {
    expect(accepts('['.repeat(64) + ']'.repeat(64))).toBe(true);
    expect(accepts('['.repeat(65) + ']'.repeat(65))).toBe(false);
    expect(accepts('['.repeat(100_000))).toBe(false);
  });
});
