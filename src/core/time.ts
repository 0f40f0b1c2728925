// Durations, sizes and event times as options and messages give them
// (contract section 8).
//
// Durations: a number of milliseconds, or a decimal and one of the units ms, s,
// m, h, d written right after it ("250ms", "1.5s", "5m"). Units are lowercase
// only, as in Go's and systemd's durations, where "M" would be a month. A space
// inside ("1 s"), a unitless string ("250": milliseconds or seconds?), exponents
// and negative values are refused; spaces around the value are ignored.
//
// Sizes: a number of bytes, or a decimal and a unit: B, the binary KiB, MiB,
// GiB, TiB (1024) or the decimal KB, MB, GB, TB (1000), in any case ("64kib" is
// unambiguous). A bare "K" or "M" is refused: tools disagree on 1000 or 1024.
// A unitless string is a number of bytes. A decimal with a unit is rounded to the
// nearest byte ("1.5KiB" is 1536); a number of bytes must be whole.
//
// Event times: an ISO 8601 / RFC 3339 string, or epoch seconds or milliseconds
// told apart by magnitude (see eventTime).

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export type DurationUnit = keyof typeof DURATION_UNITS;
/** How a duration is written in a schema (a default, a bound). */
export type DurationText = `${number}${DurationUnit}`;

const SIZE_UNITS = {
  b: 1,
  kb: 1e3,
  kib: 2 ** 10,
  mb: 1e6,
  mib: 2 ** 20,
  gb: 1e9,
  gib: 2 ** 30,
  tb: 1e12,
  tib: 2 ** 40,
} as const;
/** How a size is written in a schema (a default, a bound). */
export type SizeText = `${number}${'B' | 'KiB' | 'MiB' | 'GiB' | 'TiB' | 'KB' | 'MB' | 'GB' | 'TB'}`;

export const DURATION_EXPECTED = 'a duration like "250ms", "1.5s", "5m", "1h" or "1d", or a number of milliseconds';
export const SIZE_EXPECTED = 'a size like "512B", "64KiB", "1MiB", "1GiB" or "10MB", or a number of bytes';

/** A value that is not a well-formed duration or size: `expected` reads after "must be". */
export class ValueFormatError extends Error {
  override name = 'ValueFormatError';
  constructor(
    readonly expected: string,
    /** Why this particular value fails, when the general form does not say it. */
    readonly hint?: string,
  ) {
    super(`expected ${expected}${hint ? ` (${hint})` : ''}`);
  }
}

const QUANTITY = /^(\d+(?:\.\d+)?|\.\d+)([a-zA-Z]*)$/;

/** A quantity written as a number and a unit, as [text, number, unit]; what is wrong with it otherwise. */
function quantity(value: string, fail: (hint?: string) => ValueFormatError): [string, string, string] {
  const text = value.trim();
  const match = QUANTITY.exec(text);
  if (match) return [text, match[1]!, match[2]!];
  if (text.startsWith('-')) throw fail('it cannot be negative');
  if (/^[\d.]+\s+[a-zA-Z]+$/.test(text)) throw fail('no space between the number and its unit');
  throw fail();
}

/** Milliseconds of a duration option's value (see the top of this file). */
export function parseDuration(value: unknown): number {
  const fail = (hint?: string) => new ValueFormatError(DURATION_EXPECTED, hint);
  if (typeof value === 'number') return checkedAmount(value, fail, 'milliseconds');
  if (typeof value !== 'string') throw fail();
  const [text, amount, unit] = quantity(value, fail);
  if (unit === '') throw fail(`a string needs a unit: "${text}ms" or "${text}s"?`);
  if (!Object.hasOwn(DURATION_UNITS, unit)) {
    const lower = unit.toLowerCase();
    throw fail(Object.hasOwn(DURATION_UNITS, lower) ? `units are lowercase: "${amount}${lower}"` : `unknown unit "${unit}"; units are ms, s, m, h, d`);
  }
  return checkedAmount(Number(amount) * DURATION_UNITS[unit as DurationUnit], fail, 'milliseconds');
}

/** Bytes of a size option's value (see the top of this file). */
export function parseSize(value: unknown): number {
  const fail = (hint?: string) => new ValueFormatError(SIZE_EXPECTED, hint);
  if (typeof value === 'number') {
    if (Number.isFinite(value) && !Number.isInteger(value)) throw fail('a whole number of bytes');
    return checkedAmount(value, fail, 'bytes');
  }
  if (typeof value !== 'string') throw fail();
  const [text, amount, unit] = quantity(value, fail);
  const lower = unit.toLowerCase() || 'b';
  if (!Object.hasOwn(SIZE_UNITS, lower)) {
    const ambiguous = /^[kmgt]$/.test(lower);
    throw fail(
      ambiguous
        ? `"${unit}" could mean 1000 or 1024: write "${amount}${unit.toUpperCase()}iB" or "${amount}${unit.toUpperCase()}B"`
        : `unknown unit "${unit}"; units are B, KiB, MiB, GiB, TiB, KB, MB, GB, TB`,
    );
  }
  const bytes = Number(amount) * SIZE_UNITS[lower as keyof typeof SIZE_UNITS];
  if (lower === 'b' && !Number.isInteger(bytes)) throw fail('a whole number of bytes');
  return checkedAmount(Math.round(bytes), fail, 'bytes');
}

/**
 * Past 2^53 numbers stop counting one by one: a bound that large is a typo, and
 * refusing it keeps arithmetic on the result exact.
 */
function checkedAmount(amount: number, fail: (hint?: string) => ValueFormatError, unit: string): number {
  if (Number.isNaN(amount)) throw fail();
  if (amount < 0) throw fail('it cannot be negative');
  if (amount > Number.MAX_SAFE_INTEGER) throw fail(`at most ${Number.MAX_SAFE_INTEGER} ${unit}`);
  return amount + 0; // -0 becomes 0
}

/** A duration as written in help and messages: the largest unit that counts it whole ("1s", "1500ms", "90s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const amount = ms / DURATION_UNITS[unit];
    if (Number.isInteger(amount)) return `${amount}${unit}`;
  }
  return `${ms}ms`;
}

/** A size as written in help and messages: the largest unit that counts it whole ("64KiB", "1MB", "1000B"). */
export function formatSize(bytes: number): string {
  if (bytes === 0) return '0B';
  const largestFirst = ['TiB', 'TB', 'GiB', 'GB', 'MiB', 'MB', 'KiB', 'KB'] as const;
  for (const unit of largestFirst) {
    const amount = bytes / SIZE_UNITS[unit.toLowerCase() as keyof typeof SIZE_UNITS];
    if (Number.isInteger(amount)) return `${amount}${unit}`;
  }
  return `${bytes}B`;
}

/**
 * Epoch numbers below this are seconds, from here on milliseconds. 1e11 seconds
 * is the year 5138; 1e11 milliseconds is 3 March 1973: no time a log carries
 * sits on the wrong side of it either way.
 */
export const EPOCH_SECONDS_BELOW = 1e11;
/** Milliseconds from here on would be past the year 5138: microseconds or nanoseconds, not read. */
export const EPOCH_MILLISECONDS_BELOW = 1e14;

/**
 * RFC 3339 and ISO 8601 extended form: a date, optionally a time after 'T' or a
 * space, seconds and their fraction ('.' or ',', as Python's logging writes)
 * optional, then 'Z', '+hh:mm', '+hhmm', '+hh' or nothing.
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

/**
 * The time of a message field in epoch milliseconds (sub-millisecond digits
 * kept as a fraction), or undefined when the value is not a time:
 * - a string is ISO 8601 (see ISO_TIME). Without a zone it is UTC, not the
 *   host's zone: the same log then reads the same on every host. Impossible
 *   dates (February 30) are not times. Week and ordinal dates, the basic form
 *   (20231114T...) and digits alone are not read.
 * - a number is epoch seconds below 1e11 (1700000000.123, Python's `created`),
 *   epoch milliseconds from 1e11 up to 1e14 (Date.now()), and not a time beyond.
 */
export function eventTime(value: unknown): number | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    const size = Math.abs(value);
    if (size < EPOCH_SECONDS_BELOW) return value * 1000;
    if (size < EPOCH_MILLISECONDS_BELOW) return value;
    return undefined;
  }
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const match = ISO_TIME.exec(value);
  if (!match) return undefined;
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction, , sign, zoneHours, zoneMinutes = '0'] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const h = Number(hour);
  const mi = Number(minute);
  const s = Number(second);
  // 60 is a leap second (RFC 3339): it reads as the first moment of the next minute.
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 60) return undefined;
  let offset = 0;
  if (sign !== undefined) {
    const oh = Number(zoneHours);
    const om = Number(zoneMinutes);
    if (oh > 23 || om > 59) return undefined;
    offset = (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  // Milliseconds from the first three digits as a whole number: 0.123 * 1000 is not always 123.
  const fractionMs = fraction === undefined ? 0 : Number(fraction.slice(0, 3).padEnd(3, '0')) + (fraction.length > 3 ? Number(`0.${fraction.slice(3)}`) : 0);
  return daysSinceEpoch(y, mo, d) * 86_400_000 + ((h * 60 + mi) * 60 + s) * 1000 + fractionMs - offset;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Days from 1970-01-01 to a proleptic Gregorian date. Date.UTC would do, but it
 * reads years 0 to 99 as 1900 to 1999.
 */
function daysSinceEpoch(year: number, month: number, day: number): number {
  // Years counted from March, so that February's leap day falls at the end of one.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/**
 * The value at a dotted `path` ("origin.file") in a message, or undefined. At
 * each level the longest run of path segments that is itself a key wins, so
 * {"origin.file": x} and {"origin": {"file": x}} both answer "origin.file".
 * Only own keys count ("constructor" is not a field of {}); in a list, only
 * indexes do ("tags.0").
 */
export function fieldValue(message: unknown, path: string): unknown {
  return lookup(message, path, 0);
}

function lookup(value: unknown, path: string, from: number): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  const dot = path.indexOf('.', from);
  const segmentEnd = dot < 0 ? path.length : dot;
  if (Array.isArray(value)) {
    const index = path.slice(from, segmentEnd);
    if (!isIndex(index, value.length)) return undefined;
    return segmentEnd === path.length ? value[Number(index)] : lookup(value[Number(index)], path, segmentEnd + 1);
  }
  const record = value as Record<string, unknown>;
  for (let to = path.length; ; to = path.lastIndexOf('.', to - 1)) {
    const key = from === 0 && to === path.length ? path : path.slice(from, to);
    if (Object.hasOwn(record, key)) return to === path.length ? record[key] : lookup(record[key], path, to + 1);
    if (to === segmentEnd) return undefined;
  }
}

function isIndex(key: string, length: number): boolean {
  return /^(0|[1-9]\d*)$/.test(key) && Number(key) < length;
}

