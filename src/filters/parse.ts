import { UsageError } from '../core/errors.js';
import type { OptionsOf } from '../core/options.js';
import { defineFilter, one, type FilterResult, type Message } from '../core/plugin.js';
import { fieldValue, formatSize } from '../core/time.js';
import { isRecord, mergeFields, put, setField, type Fields } from '../common/fields.js';
import { captureFields, checkTypes, compilePattern, libraryHelp, PatternError, type CompiledPattern } from '../common/grok-patterns.js';

const options = {
  pattern: {
    type: 'string',
    description: 'A regular expression whose named groups (?<name>...) and %{NAME:field} references become fields.',
    example: '%{PYTHON_LOGGING}',
  },
  patterns: {
    type: 'strings',
    description: 'Several patterns, tried in order: the first that matches wins (instead of pattern).',
  },
  field: {
    type: 'string',
    default: 'message',
    description: 'The field to parse (a dotted path). A string message (--decoder Null) is parsed as if it were {message: line}.',
  },
  target: {
    type: 'string',
    description: 'Put the fields under this field (a dotted path) instead of merging them into the message.',
  },
  types: {
    type: 'any',
    description: 'Types of captured fields, e.g. {status: "integer", took: "number", ok: "boolean"} (also string); a value that does not read as its type is an error record.',
  },
  definitions: {
    type: 'any',
    description: 'More named patterns for %{NAME}, e.g. {ORDER: "[A-Z]-\\\\d+"}; they win over the built-in ones.',
  },
  on_mismatch: {
    type: 'string',
    choices: ['error', 'pass', 'drop'],
    default: 'error',
    description: 'When no pattern matches (or the field is missing): an error record, pass the message on unchanged, or drop it.',
  },
  max_length: {
    type: 'size',
    min: 1,
    default: '64KiB',
    description: 'A field longer than this (in UTF-8 bytes) is not matched and becomes an error record, so one hostile line cannot stall the chain in a regular expression.',
  },
} as const;

type ParseOptions = OptionsOf<typeof options>;

/** The patterns of `o`, compiled; throws UsageError naming the pattern that fails. */
function compileAll(o: ParseOptions): CompiledPattern[] {
  const definitions = o.definitions ?? {};
  const types = (o.types ?? {}) as Record<string, string>;
  const sources = o.pattern !== undefined ? [o.pattern] : (o.patterns ?? []);
  return sources.map((source, i) => {
    try {
      return compilePattern(source, definitions as Record<string, string>, types);
    } catch (error) {
      if (!(error instanceof PatternError)) throw error;
      const which = o.pattern !== undefined ? `pattern ${JSON.stringify(source)}` : `patterns[${i}] ${JSON.stringify(source)}`;
      throw new UsageError(`${which}: ${error.message}`);
    }
  });
}

function checkDefinitions(definitions: unknown): string | undefined {
  if (definitions === undefined) return undefined;
  if (!isRecord(definitions)) return `option 'definitions' must be an object like {ORDER: "[A-Z]-\\\\d+"}`;
  for (const [name, regex] of Object.entries(definitions)) {
    if (!/^\w+$/.test(name)) return `option 'definitions': '${name}' is not a pattern name (letters, digits and _)`;
    if (typeof regex !== 'string') return `option 'definitions': ${name} must be a string (a regular expression)`;
  }
  return undefined;
}

/** Bytes of `text` in UTF-8 exceed `limit`: the length alone decides unless the text is near the limit. */
function longerThan(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return Buffer.byteLength(text) > limit;
}

export default defineFilter({
  summary: 'Parse a field (or a text line) into fields with regular expressions and named patterns (alias Regex).',
  description:
    'Named groups (?<name>...) become fields, and so do references to named patterns written %{NAME:field}, or ' +
    '%{NAME:field:type} with type integer, number, boolean or string (%{NAME} alone matches without making a field). ' +
    'A pattern matches anywhere in the field unless it is anchored with ^ and $. The fields are merged into the message ' +
    '(a field of the same name is replaced: with PYTHON_LOGGING, message becomes the text after the header) or put under ' +
    '`target`; a field name with dots makes nested objects. With --decoder Null the message is a line of text: it is parsed ' +
    'as {message: line}, and goes on as that object. A pattern that does not compile or names an unknown %{NAME} is a ' +
    'usage error. A field longer than max_length is not matched: it goes to the error output, so a line built to make a ' +
    'regular expression backtrack costs at most that much work. Built-in patterns: ' +
    libraryHelp(),
  examples: [
    `message-passing --decoder Null --filter Parse --filter_options '{pattern: "%{PYTHON_LOGGING}"}' < app.log`,
    `message-passing --input File --input_options '{filename: "/var/log/nginx/access.log"}' --decoder Null --filter Parse --filter_options '{pattern: "%{COMBINED_LOG}"}'`,
    `message-passing --filter Parse --filter_options '{field: "line", pattern: "took (?<took>\\\\d+)ms", types: {took: "integer"}, on_mismatch: "pass"}'`,
  ],
  options,
  check(o) {
    if ((o.pattern === undefined) === (o.patterns === undefined)) return 'give one of pattern or patterns';
    const problem = checkTypes(o.types) ?? checkDefinitions(o.definitions);
    if (problem) return problem;
    try {
      compileAll(o);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    return undefined;
  },
  create(o) {
    const compiled = compileAll(o);
    const { field, target, on_mismatch: onMismatch, max_length: maxLength } = o;
    const mismatch = (message: Message, why: string): FilterResult => {
      if (onMismatch === 'pass') return one(message);
      if (onMismatch === 'drop') return undefined;
      throw new Error(why);
    };
    return {
      filter(message) {
        const line = typeof message === 'string';
        const record: Fields | undefined = line ? { [field]: message } : isRecord(message) ? message : undefined;
        if (record === undefined) return mismatch(message, `Parse expects an object or a line of text, got ${Array.isArray(message) ? 'a list' : typeof message}`);
        const text = line ? message : fieldValue(record, field);
        if (typeof text !== 'string') {
          return mismatch(record, text === undefined ? `field '${field}' is missing` : `field '${field}' is not a string`);
        }
        if (longerThan(text, maxLength)) {
          throw new Error(`field '${field}' is longer than max_length (${formatSize(maxLength)}): not matched`);
        }
        for (const pattern of compiled) {
          const match = pattern.regex.exec(text);
          if (match === null) continue;
          const fields: Fields = {};
          captureFields(pattern, match, fields);
          if (target !== undefined) {
            setField(record, target, fields);
            return record;
          }
          if (!line) return mergeFields(record, fields);
          // A line becomes its fields, in the order of the pattern; the line itself is kept only when no capture replaced it.
          if (Object.hasOwn(fields, field)) return fields;
          const merged: Fields = {};
          put(merged, field, text);
          return mergeFields(merged, fields);
        }
        return mismatch(record, `no pattern matched field '${field}'`);
      },
    };
  },
});
