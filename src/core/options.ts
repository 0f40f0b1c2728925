import { UsageError } from './errors.js';
import { type DurationText, type SizeText, ValueFormatError, formatDuration, formatSize, parseDuration, parseSize } from './time.js';

/** One option of a plugin: validates it and documents it (help, list, man page). */
export type OptionSpec =
  | (SpecBase & { type: 'string'; choices?: readonly string[]; default?: string })
  | (SpecBase & { type: 'integer' | 'number'; default?: number; min?: number })
  | (SpecBase & { type: 'boolean'; default?: boolean })
  /**
   * A duration ("250ms", "1s", "5m", "1h", "1d") or a number of milliseconds;
   * always milliseconds once validated. The default is written as a string, and
   * help shows it as written.
   */
  | (SpecBase & { type: 'duration'; default?: DurationText; min?: DurationText | number; max?: DurationText | number })
  /** A size ("64KiB", "1MiB", "10MB") or a number of bytes; always bytes once validated. */
  | (SpecBase & { type: 'size'; default?: SizeText; min?: SizeText | number; max?: SizeText | number })
  /** One string or a list of strings; always a list once validated. */
  | (SpecBase & { type: 'strings'; default?: readonly string[] })
  | (SpecBase & { type: 'any'; default?: unknown });

interface SpecBase {
  description: string;
  required?: boolean;
  /** Other names accepted for this option (Perl's spellings). */
  aliases?: readonly string[];
  /** Shown in help only; validation does not use it. */
  example?: string;
}

export type OptionsSchema = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S extends { type: 'string' }
  ? S extends { choices: readonly (infer C)[] } ? C : string
  : S extends { type: 'integer' | 'number' | 'duration' | 'size' } ? number
  : S extends { type: 'boolean' } ? boolean
  : S extends { type: 'strings' } ? string[]
  : unknown;

type Known<S extends OptionSpec> = S extends { default: unknown } ? true : S extends { required: true } ? true : false;

/** The validated options a plugin's constructor receives. */
export type OptionsOf<Schema extends OptionsSchema> = {
  [K in keyof Schema]: Known<Schema[K]> extends true ? ValueOf<Schema[K]> : ValueOf<Schema[K]> | undefined;
};

/**
 * Checks `raw` against `schema`, applies defaults and aliases, and returns the
 * typed options. Every failure is a UsageError naming the plugin, the key and
 * what was expected.
 */
export function validateOptions<Schema extends OptionsSchema>(
  where: string,
  schema: Schema,
  raw: unknown,
): OptionsOf<Schema> {
  if (raw === undefined || raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UsageError(`${where}: options must be an object like '{key: "value"}', got ${typeName(raw)}`);
  }
  const byName = new Map<string, string>();
  for (const [key, spec] of Object.entries(schema)) {
    byName.set(key, key);
    for (const alias of spec.aliases ?? []) byName.set(alias, key);
  }
  const out: Record<string, unknown> = {};
  for (const [given, value] of Object.entries(raw as Record<string, unknown>)) {
    const key = byName.get(given);
    if (key === undefined) {
      const known = [...byName.keys()];
      const hint = closest(given, known);
      throw new UsageError(
        `${where}: unknown option '${given}'` +
          (hint ? ` (did you mean '${hint}'?)` : known.length ? ` (known: ${known.join(', ')})` : ' (it takes no options)'),
      );
    }
    if (key in out) throw new UsageError(`${where}: option '${key}' is given twice (as '${given}' and an alias)`);
    out[key] = coerce(where, key, schema[key]!, value);
  }
  for (const [key, spec] of Object.entries(schema)) {
    if (key in out) continue;
    if (spec.default !== undefined) {
      // Durations and sizes keep their default as written ("1s"), which help shows; the plugin gets the number.
      if (spec.type === 'duration' || spec.type === 'size') out[key] = coerce(where, key, spec, spec.default);
      else out[key] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
    } else if (spec.required) throw new UsageError(`${where}: option '${key}' is required (${spec.description})`);
  }
  return out as OptionsOf<Schema>;
}

function coerce(where: string, key: string, spec: OptionSpec, value: unknown): unknown {
  const bad = (expected: string) =>
    new UsageError(`${where}: option '${key}' must be ${expected}, got ${typeName(value)}`);
  switch (spec.type) {
    case 'string': {
      if (typeof value !== 'string') throw bad('a string');
      if (spec.choices) {
        const match = spec.choices.find((c) => c.toLowerCase() === value.toLowerCase());
        if (match === undefined) throw bad(`one of ${spec.choices.join(', ')}`);
        return match;
      }
      return value;
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) throw bad(spec.type === 'integer' ? 'an integer' : 'a number');
      if (spec.type === 'integer' && !Number.isInteger(value)) throw bad('a whole number');
      if (spec.min !== undefined && value < spec.min) throw bad(`at least ${spec.min}`);
      return value;
    }
    case 'duration':
    case 'size': {
      const [parse, format] = spec.type === 'duration' ? [parseDuration, formatDuration] : [parseSize, formatSize];
      let amount: number;
      try {
        amount = parse(value);
      } catch (error) {
        if (!(error instanceof ValueFormatError)) throw error;
        throw new UsageError(`${where}: option '${key}' must be ${error.expected}, got ${typeName(value)}${error.hint ? ` (${error.hint})` : ''}`);
      }
      if (spec.min !== undefined && amount < parse(spec.min)) throw bad(`at least ${format(parse(spec.min))}`);
      if (spec.max !== undefined && amount > parse(spec.max)) throw bad(`at most ${format(parse(spec.max))}`);
      return amount;
    }
    case 'boolean':
      if (typeof value !== 'boolean') throw bad('true or false');
      return value;
    case 'strings': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string')) {
        throw bad('a string or a non-empty list of strings');
      }
      return list;
    }
    case 'any':
      return value;
  }
}

export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** The candidate closest to `word` by edit distance, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const w = word.toLowerCase();
  for (const candidate of candidates) {
    const d = editDistance(w, candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(w.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
