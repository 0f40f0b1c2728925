// How the Postgres output writes values into COPY's text format, per column type.
import { describe, expect, it } from 'vitest';
import { cellText, copyCell, copyJson } from '../../src/outputs/postgres.js';

describe('copyCell', () => {
  it('escapes what COPY text reads specially, and writes NULL as \\N', () => {
    expect(copyCell('plain text')).toBe('plain text');
    expect(copyCell('a\tb\nc\rd\\e')).toBe('a\\tb\\nc\\rd\\\\e');
    expect(copyCell('\\N')).toBe('\\\\N');
    expect(copyCell(null)).toBe('\\N');
    expect(copyCell('')).toBe('');
  });
});

it('copyJson doubles backslashes only: JSON text holds no raw newline, CR or tab', () => {
  const json = JSON.stringify({ text: 'a\tb\nc "q" \\ d' });
  expect(copyJson(json)).toBe(copyCell(json));
  expect(copyJson('{"a":1}')).toBe('{"a":1}');
});

describe('cellText', () => {
  it('NULL for a missing field or null, whatever the column', () => {
    for (const kind of ['json', 'array', 'time', 'plain'] as const) {
      expect(cellText(undefined, kind)).toBeNull();
      expect(cellText(null, kind)).toBeNull();
    }
  });

  it('json columns take JSON of any value, strings included', () => {
    expect(cellText('text', 'json')).toBe('"text"');
    expect(cellText({ a: [1, 2] }, 'json')).toBe('{"a":[1,2]}');
    expect(cellText(3, 'json')).toBe('3');
  });

  it('time columns read numbers as epoch seconds or milliseconds', () => {
    expect(cellText(1700000000, 'time')).toBe('2023-11-14T22:13:20.000Z');
    expect(cellText(1700000000123, 'time')).toBe('2023-11-14T22:13:20.123Z');
    expect(cellText('2024-01-01T00:00:00Z', 'time')).toBe('2024-01-01T00:00:00Z');
  });

  it('array columns take lists as array literals, quoted', () => {
    expect(cellText(['a', 'b "c"', 'd\\e', null, 3], 'array')).toBe('{"a","b \\"c\\"","d\\\\e",NULL,"3"}');
    expect(cellText([[1, 2], [3]], 'array')).toBe('{{"1","2"},{"3"}}');
  });

  it('other columns take strings as they are, numbers and booleans as text, objects as JSON', () => {
    expect(cellText('x', 'plain')).toBe('x');
    expect(cellText(2.5, 'plain')).toBe('2.5');
    expect(cellText(true, 'plain')).toBe('true');
    expect(cellText({ a: 1 }, 'plain')).toBe('{"a":1}');
    expect(cellText(['a'], 'plain')).toBe('["a"]');
  });
});
