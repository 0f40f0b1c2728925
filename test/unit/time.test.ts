import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ValueFormatError,
  eventTime,
  fieldValue,
  formatDuration,
  formatSize,
  parseDuration,
  parseSize,
} from '../../src/core/time.js';

function failure(parse: (value: unknown) => number, value: unknown): ValueFormatError {
  try {
    parse(value);
  } catch (error) {
    expect(error).toBeInstanceOf(ValueFormatError);
    return error as ValueFormatError;
  }
  throw new Error(`${JSON.stringify(value)} was accepted`);
}

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['1s', 1000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['.5s', 500],
    ['0.25m', 15_000],
    ['1.5ms', 1.5],
    ['0s', 0],
    ['0ms', 0],
    ['007s', 7000],
    ['  2s\n', 2000],
    ['104249991d', 104_249_991 * 86_400_000],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('takes a number as milliseconds', () => {
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration(0.5)).toBe(0.5);
    expect(Object.is(parseDuration(-0), 0)).toBe(true);
    expect(parseDuration(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it.each([
    ['1 s', /no space between the number and its unit/],
    ['1.5 ms', /no space/],
    ['250', /a string needs a unit: "250ms" or "250s"\?/],
    ['1S', /units are lowercase: "1s"/],
    ['5M', /units are lowercase: "5m"/],
    ['1MS', /units are lowercase: "1ms"/],
    ['1sec', /unknown unit "sec"; units are ms, s, m, h, d/],
    ['1w', /unknown unit "w"/],
    ['1toString', /unknown unit "toString"/],
    ['-1s', /cannot be negative/],
    ['1e3s', /^expected a duration like/],
    ['1h30m', /unknown unit "h"|^expected/],
    ['', /^expected a duration like "250ms", "1.5s", "5m", "1h" or "1d", or a number of milliseconds$/],
    ['s', /^expected a duration/],
    ['1.s', /^expected a duration/],
    ['99999999999999999999d', /at most 9007199254740991 milliseconds/],
    ['104249992d', /at most/],
  ])('refuses %j', (text, message) => {
    expect(failure(parseDuration, text).message).toMatch(message);
  });

  it.each([[-1], [NaN], [Infinity], [-Infinity], [2 ** 60], [true], [null], [undefined], [{}], [['1s']]])('refuses %j', (value) => {
    const error = failure(parseDuration, value);
    expect(error.expected).toMatch(/^a duration like/);
  });

  it('says why a negative number or a huge one fails', () => {
    expect(failure(parseDuration, -1).hint).toBe('it cannot be negative');
    expect(failure(parseDuration, 1e300).hint).toMatch(/at most/);
  });
});

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['0B', 0],
    ['512B', 512],
    ['512b', 512],
    ['1024', 1024],
    ['64KiB', 65_536],
    ['64kib', 65_536],
    ['64KIB', 65_536],
    ['1MiB', 1_048_576],
    ['1GiB', 1_073_741_824],
    ['2TiB', 2 * 2 ** 40],
    ['1KB', 1000],
    ['1kb', 1000],
    ['10MB', 10_000_000],
    ['1GB', 1e9],
    ['1TB', 1e12],
    ['1.5KiB', 1536],
    ['0.1MiB', 104_858],
    ['.5KB', 500],
    [' 8KiB ', 8192],
    ['8191TiB', 8191 * 2 ** 40],
  ])('reads %j as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it('takes a whole number as bytes', () => {
    expect(parseSize(0)).toBe(0);
    expect(parseSize(4096)).toBe(4096);
    expect(parseSize(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it.each([
    ['64K', /"K" could mean 1000 or 1024: write "64KiB" or "64KB"/],
    ['1m', /"m" could mean 1000 or 1024: write "1MiB" or "1MB"/],
    ['1 MiB', /no space/],
    ['1.5B', /whole number of bytes/],
    ['1.5', /whole number of bytes/],
    ['1PiB', /unknown unit "PiB"; units are B, KiB, MiB, GiB, TiB, KB, MB, GB, TB/],
    ['1constructor', /unknown unit "constructor"/],
    ['-1KiB', /cannot be negative/],
    ['8192TiB', /at most 9007199254740991 bytes/],
    ['', /^expected a size like "512B", "64KiB", "1MiB", "1GiB" or "10MB", or a number of bytes$/],
    ['KiB', /^expected a size/],
  ])('refuses %j', (text, message) => {
    expect(failure(parseSize, text).message).toMatch(message);
  });

  it.each([[1.5], [-1], [NaN], [Infinity], [2 ** 53], [false], [null], [[]]])('refuses %j', (value) => {
    expect(failure(parseSize, value).expected).toMatch(/^a size like/);
  });
});

describe('formatDuration and formatSize', () => {
  it.each([
    [0, '0s'],
    [1000, '1s'],
    [1500, '1500ms'],
    [90_000, '90s'],
    [300_000, '5m'],
    [3_600_000, '1h'],
    [86_400_000, '1d'],
    [172_800_000, '2d'],
    [250, '250ms'],
    [0.5, '0.5ms'],
  ])('writes %d ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([
    [0, '0B'],
    [1, '1B'],
    [1000, '1KB'],
    [1023, '1023B'],
    [1024, '1KiB'],
    [65_536, '64KiB'],
    [1_048_576, '1MiB'],
    [1_000_000, '1MB'],
    [2_048_000, '2000KiB'],
    [2 ** 30, '1GiB'],
    [2 ** 40, '1TiB'],
  ])('writes %d bytes as %j', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('reads back what it writes', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => parseDuration(formatDuration(n)) === n));
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => parseSize(formatSize(n)) === n));
    fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), (n) => parseDuration(formatDuration(n * 86_400_000)) === n * 86_400_000));
  });
});

describe('eventTime', () => {
  const at = Date.UTC(2023, 10, 14, 22, 13, 20, 123); // 1700000000123

  it.each([
    ['2023-11-14T22:13:20.123Z', at],
    ['2023-11-14T22:13:20.123z', at],
    ['2023-11-14t22:13:20.123Z', at],
    ['2023-11-14 22:13:20.123Z', at],
    ['2023-11-14T22:13:20,123Z', at],
    ['2023-11-14 22:13:20,123', at],
    ['2023-11-14T22:13:20.123', at],
    ['2023-11-14T22:13:20.1Z', at - 23],
    ['2023-11-14T22:13:20.12Z', at - 3],
    ['2023-11-14T22:13:20Z', at - 123],
    ['2023-11-14T22:13Z', at - 20_123],
    ['2023-11-14', Date.UTC(2023, 10, 14)],
    ['2023-11-15T00:13:20.123+02:00', at],
    ['2023-11-15T00:13:20.123+0200', at],
    ['2023-11-15T00:13:20.123+02', at],
    ['2023-11-14T17:43:20.123-04:30', at],
    ['2023-11-14T22:13:20.123-00:00', at],
    ['1970-01-01T00:00:00Z', 0],
    ['1969-12-31T23:59:59Z', -1000],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2000-02-29T00:00:00Z', Date.UTC(2000, 1, 29)],
    ['0001-01-01T00:00:00Z', -62_135_596_800_000],
    ['0050-06-01T00:00:00Z', Date.parse('0050-06-01T00:00:00Z')],
    ['9999-12-31T23:59:59.999Z', 253_402_300_799_999],
    ['2016-12-31T23:59:60Z', Date.UTC(2017, 0, 1)],
  ])('reads %j', (text, ms) => {
    expect(eventTime(text)).toBe(ms);
  });

  it('keeps digits past the millisecond as a fraction', () => {
    expect(eventTime('2023-11-14T22:13:20.123456Z')).toBeCloseTo(at + 0.456, 6);
    expect(eventTime('2023-11-14T22:13:20.123456789Z')).toBeCloseTo(at + 0.456789, 6);
  });

  it('agrees with Date.parse where both read the form', () => {
    const date = fc.date({ min: new Date('0100-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true });
    fc.assert(fc.property(date, (d) => eventTime(d.toISOString()) === d.getTime()));
    const zone = fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }));
    fc.assert(
      fc.property(date, zone, (d, [sign, h, m]) => {
        const text = `${d.toISOString().slice(0, -1)}${sign}${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
        return eventTime(text) === Date.parse(text);
      }),
    );
  });

  it.each([
    '2023-02-30',
    '2023-02-29T00:00:00Z',
    '1900-02-29',
    '2023-13-01',
    '2023-00-10',
    '2023-11-00',
    '2023-11-31',
    '2023-11-14T24:00:00Z',
    '2023-11-14T22:60:00Z',
    '2023-11-14T22:13:61Z',
    '2023-11-14T22:13:20+24:00',
    '2023-11-14T22:13:20+02:60',
    '2023-11-14T22:13:20.Z',
    '2023-11-14T22Z',
    '2023-11-14T22:13:20 Z',
    ' 2023-11-14T22:13:20Z',
    '2023-11-14T22:13:20Z ',
    '20231114T221320Z',
    '2023-318',
    '2023-W46-2',
    '+002023-11-14T22:13:20Z',
    '23-11-14',
    '2023/11/14',
    'Tue Nov 14 2023 22:13:20 GMT+0000',
    '1700000000',
    '1700000000123',
    '',
    'now',
    '2023-11-14T22:13:20.' + '1'.repeat(60) + 'Z',
  ])('does not read %j', (text) => {
    expect(eventTime(text)).toBeUndefined();
  });

  it('reads numbers below 1e11 as epoch seconds, from 1e11 to 1e14 as milliseconds', () => {
    expect(eventTime(1_700_000_000)).toBe(1_700_000_000_000);
    expect(eventTime(1_700_000_000.123)).toBeCloseTo(at, 3);
    expect(eventTime(1_700_000_000.5)).toBe(1_700_000_000_500);
    expect(eventTime(1_700_000_000_123)).toBe(at);
    expect(eventTime(0)).toBe(0);
    expect(eventTime(-86_400)).toBe(-86_400_000);
    expect(eventTime(99_999_999_999)).toBe(99_999_999_999_000);
    expect(eventTime(100_000_000_000)).toBe(100_000_000_000);
    expect(eventTime(99_999_999_999_999)).toBe(99_999_999_999_999);
    expect(eventTime(-100_000_000_000)).toBe(-100_000_000_000);
    expect(eventTime(1_700_000_000n)).toBeUndefined();
  });

  it.each([[1e14], [1_700_000_000_123_456], [1.7e18], [-1e14], [NaN], [Infinity], [-Infinity], [true], [null], [undefined], [{}], [[1]]])(
    'does not read %j',
    (value) => {
      expect(eventTime(value)).toBeUndefined();
    },
  );
});

describe('fieldValue', () => {
  it('reads top-level and nested fields', () => {
    const message = { a: 1, origin: { file: 'x.log', line: { n: 3 } }, zero: 0, no: false, nothing: null };
    expect(fieldValue(message, 'a')).toBe(1);
    expect(fieldValue(message, 'origin.file')).toBe('x.log');
    expect(fieldValue(message, 'origin.line.n')).toBe(3);
    expect(fieldValue(message, 'origin')).toBe(message.origin);
    expect(fieldValue(message, 'zero')).toBe(0);
    expect(fieldValue(message, 'no')).toBe(false);
    expect(fieldValue(message, 'nothing')).toBeNull();
  });

  it('answers undefined for what is not there', () => {
    const message = { a: 1, origin: { file: 'x.log' } };
    expect(fieldValue(message, 'b')).toBeUndefined();
    expect(fieldValue(message, 'a.b')).toBeUndefined();
    expect(fieldValue(message, 'origin.line')).toBeUndefined();
    expect(fieldValue(message, 'origin.file.length')).toBeUndefined();
    expect(fieldValue('text', 'length')).toBeUndefined();
    expect(fieldValue(null, 'a')).toBeUndefined();
    expect(fieldValue(undefined, 'a')).toBeUndefined();
    expect(fieldValue(42, 'a')).toBeUndefined();
  });

  it('lets a key with dots win over the nested path', () => {
    expect(fieldValue({ 'origin.file': 'flat', origin: { file: 'nested' } }, 'origin.file')).toBe('flat');
    expect(fieldValue({ origin: { file: 'nested' } }, 'origin.file')).toBe('nested');
    expect(fieldValue({ a: { 'b.c': 1, b: { c: 2 } } }, 'a.b.c')).toBe(1);
    expect(fieldValue({ 'a.b': { c: 1 }, a: { b: { c: 2 } } }, 'a.b.c')).toBe(1);
    expect(fieldValue({ 'a.b': { c: 1 } }, 'a.b.c')).toBe(1);
    expect(fieldValue({ 'a.b.c': 0 }, 'a.b.c')).toBe(0);
    // The longest key present is taken even when it leads nowhere.
    expect(fieldValue({ 'a.b': 5, a: { b: { c: 2 } } }, 'a.b.c')).toBeUndefined();
  });

  it('reads own keys only', () => {
    expect(fieldValue({}, 'constructor')).toBeUndefined();
    expect(fieldValue({}, 'toString')).toBeUndefined();
    expect(fieldValue({}, '__proto__')).toBeUndefined();
    expect(fieldValue({ a: {} }, 'a.hasOwnProperty')).toBeUndefined();
    expect(fieldValue(JSON.parse('{"__proto__": {"x": 1}}'), '__proto__.x')).toBe(1);
  });

  it('indexes lists by position only', () => {
    const message = { tags: ['a', 'b'], rows: [{ n: 1 }, { n: 2 }] };
    expect(fieldValue(message, 'tags.0')).toBe('a');
    expect(fieldValue(message, 'tags.1')).toBe('b');
    expect(fieldValue(message, 'tags.2')).toBeUndefined();
    expect(fieldValue(message, 'tags.01')).toBeUndefined();
    expect(fieldValue(message, 'tags.-1')).toBeUndefined();
    expect(fieldValue(message, 'tags.length')).toBeUndefined();
    expect(fieldValue(message, 'rows.1.n')).toBe(2);
    expect(fieldValue([{ x: 1 }], '0.x')).toBe(1);
  });

  it('handles empty segments as the empty key', () => {
    expect(fieldValue({ '': 1 }, '')).toBe(1);
    expect(fieldValue({ a: { '': 2 } }, 'a.')).toBe(2);
    expect(fieldValue({ '': { x: 3 } }, '.x')).toBe(3);
    expect(fieldValue({ '': { '': 4 } }, '.')).toBe(4);
    expect(fieldValue({ a: 1 }, '.x')).toBeUndefined();
    expect(fieldValue({}, '...')).toBeUndefined();
  });
});
