// Message matchers as window filters take them in their options (Threshold's
// `when`, Inhibit's `source` and `targets`): an object of field path → what
// the field must hold, every field matching.
//
// What a field must hold:
// - a string, number or boolean: the field's value, compared as text (500 and
//   "500" match: a status code may be logged either way);
// - a string written "/regex/flags": a regular expression the value (as text)
//   must match somewhere; flags g and y are refused (they make a test stateful);
// - null: the field is null or missing;
// - a list of those: any one of them.
// A field holding a list matches when one of its elements does.
import { typeName } from './options.js';
import { fieldValue } from './time.js';

/** Whether a message's fields (see fieldsOf) match. */
export type Matcher = (fields: object | undefined) => boolean;

/** An option that is not a valid matcher: the text says where and why, for a usage error. */
export class MatchSpecError extends Error {
  override name = 'MatchSpecError';
}

type ValueTest = (value: unknown) => boolean;

const REGEX = /^\/(.*)\/([a-z]*)$/s;

/** Compiles `spec`, the option at `where` (named in errors); undefined matches every message. */
export function compileMatch(spec: unknown, where: string): Matcher {
  if (spec === undefined) return () => true;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new MatchSpecError(`${where} must be an object of field: value (a value, "/regex/" or a list of those), got ${typeName(spec)}`);
  }
  const tests = Object.entries(spec).map(([path, expected]) => {
    if (path === '') throw new MatchSpecError(`${where} has an empty field name`);
    const test = valueTest(expected, `${where}.${path}`);
    return (fields: object) => {
      const value = fieldValue(fields, path);
      return Array.isArray(value) ? value.some(test) : test(value);
    };
  });
  if (tests.length === 0) return () => true;
  if (tests.length === 1) {
    const [only] = tests as [(fields: object) => boolean];
    return (fields) => fields !== undefined && only(fields);
  }
  return (fields) => fields !== undefined && tests.every((test) => test(fields));
}

function valueTest(expected: unknown, where: string): ValueTest {
  if (Array.isArray(expected)) {
    if (expected.length === 0) throw new MatchSpecError(`${where} is an empty list: it would match nothing`);
    const any = expected.map((e, i) => scalarTest(e, `${where}[${i}]`));
    return (value) => any.some((test) => test(value));
  }
  return scalarTest(expected, where);
}

function scalarTest(expected: unknown, where: string): ValueTest {
  if (expected === null) return (value) => value === null || value === undefined;
  if (typeof expected === 'string') {
    const regex = REGEX.exec(expected);
    if (regex) {
      const [, source, flags] = regex as unknown as [string, string, string];
      if (/[gy]/.test(flags)) throw new MatchSpecError(`${where}: flags g and y make a test depend on the previous one; leave them out`);
      let pattern: RegExp;
      try {
        pattern = new RegExp(source, flags);
      } catch (error) {
        throw new MatchSpecError(`${where}: ${error instanceof Error ? error.message : String(error)}`);
      }
      return (value) => isScalar(value) && pattern.test(String(value));
    }
  } else if (typeof expected !== 'number' && typeof expected !== 'boolean') {
    throw new MatchSpecError(`${where} must be a string, number, boolean, null, "/regex/" or a list of those, got ${typeName(expected)} (for a nested field, write its dotted path)`);
  }
  const text = String(expected);
  return (value) => value === expected || (isScalar(value) && String(value) === text);
}

function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

/**
 * A part of a key that tells events apart, for one field's value: a string as
 * its length and itself (no escaping to do, and no two values alike), anything
 * else as JSON. Parts put one after another cannot run into each other.
 */
export function keyPart(value: unknown): string {
  if (typeof value === 'string') return `${value.length}"${value}`;
  return `${JSON.stringify(value)},`;
}
