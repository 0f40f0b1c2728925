import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, UsageError } from '../core/errors.js';
import { flags, type FlagSpec } from './flags.js';
import { closest, typeName } from '../core/options.js';

export type PluginOptions = Record<string, unknown>;

export interface PluginChoice {
  name: string;
  options: PluginOptions;
}

/** What the command line (and config file) asked for. */
export interface Settings {
  input: PluginChoice;
  filters: PluginChoice[];
  output: PluginChoice;
  decoder: PluginChoice;
  encoder: PluginChoice;
  error: PluginChoice;
  /** Seconds between stats lines; undefined when --stats was not given. */
  stats?: number;
  list: boolean;
  /** true for plain --help, a plugin name for --help PLUGIN. */
  help?: string | true;
  version: boolean;
  man: boolean;
  /** `message-passing completion [SHELL]`. */
  completion?: string;
}

type RawValue = string | number | boolean | PluginOptions | undefined;
type Raw = Map<string, RawValue | RawValue[]>;

const byName = new Map(flags.map((f) => [f.name, f]));

export function parseArgs(argv: readonly string[]): Settings {
  if (argv[0] === 'completion') return { ...defaults(new Map()), completion: argv[1] ?? 'bash' };
  const raw: Raw = new Map();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '-h') {
      raw.set('help', true);
      continue;
    }
    if (!token.startsWith('--') || token === '--') {
      throw new UsageError(`unexpected argument '${token}': every setting is a flag such as --input NAME (see --help)`);
    }
    const eq = token.indexOf('=');
    const given = token.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(given.replace(/-/g, '_'));
    if (!spec || spec.hidden && given !== spec.name) {
      const hint = closest(given.replace(/-/g, '_'), flags.filter((f) => !f.hidden).map((f) => f.name));
      throw new UsageError(`unknown flag --${given}` + (hint ? ` (did you mean --${hint}?)` : ' (see --help)'));
    }
    let value: string | undefined = eq < 0 ? undefined : token.slice(eq + 1);
    const next = argv[i + 1];
    if (value === undefined) {
      if (spec.kind === 'plugin' || spec.kind === 'options' || spec.kind === 'string') {
        // `--input --output X` forgot the input's name; taking '--output' as one would mislead.
        if (next === undefined || next.startsWith('--')) throw new UsageError(`--${spec.name} needs a value (${spec.value})`);
        value = next;
        i++;
      } else if (spec.kind === 'optional-number' && next !== undefined && /^(\d+\.?\d*|\.\d+)$/.test(next)) {
        value = next;
        i++;
      } else if (spec.kind === 'optional-string' && next !== undefined && !next.startsWith('-')) {
        value = next;
        i++;
      }
    }
    store(raw, spec, convert(spec, value, `--${spec.name}`));
  }
  const file = raw.get('configfile');
  if (typeof file === 'string') mergeConfig(raw, file);
  return defaults(raw);
}

function store(raw: Raw, spec: FlagSpec, value: RawValue): void {
  if (spec.repeats) {
    const list = (raw.get(spec.name) as RawValue[] | undefined) ?? [];
    list.push(value);
    raw.set(spec.name, list);
  } else {
    raw.set(spec.name, value);
  }
}

function convert(spec: FlagSpec, value: string | undefined, where: string): RawValue {
  switch (spec.kind) {
    case 'options':
      return parseOptions(value!, where);
    case 'boolean':
      if (value === undefined || value === 'true') return true;
      if (value === 'false') return false;
      throw new UsageError(`${where} takes no value`);
    case 'optional-number': {
      if (value === undefined) return Number(spec.default);
      const n = Number(value);
      if (!(n > 0)) throw new UsageError(`${where} takes a number of seconds greater than 0, got '${value}'`);
      return n;
    }
    case 'optional-string':
      return value ?? true;
    default:
      if (value === '') throw new UsageError(`${where} needs a non-empty value`);
      return value;
  }
}

/** JSON5 (strict JSON too); the JSON5 parser loads only when plain JSON fails. */
export function parseOptions(text: string, where: string): PluginOptions {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = parseJson5(text, where);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where}: expected an object like '{key: "value"}', got ${typeName(value)}`);
  }
  return value as PluginOptions;
}

let json5: { parse(text: string): unknown } | undefined;
function parseJson5(text: string, where: string, showText = true): unknown {
  json5 ??= loadJson5();
  try {
    return json5.parse(text);
  } catch (error) {
    const reason = `${where}: not valid JSON5 (${describe(error).replace(/^JSON5: /, '')})`;
    if (!showText) throw new UsageError(reason);
    // The message stays on one line whatever the text holds.
    const oneLine = text.replace(/\s+/g, ' ').trim();
    throw new UsageError(`${reason}: ${oneLine.length > 60 ? oneLine.slice(0, 60) + '…' : oneLine}`);
  }
}

function loadJson5(): { parse(text: string): unknown } {
  return createRequire(import.meta.url)('json5') as { parse(text: string): unknown };
}

function mergeConfig(raw: Raw, file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--configfile ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? describe(error)})`);
  }
  const config = parseJson5(text, `--configfile ${file}`, false);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new UsageError(`--configfile ${file}: expected an object with keys such as input, output, filter`);
  }
  const onCommandLine = new Set(raw.keys());
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const spec = byName.get(key.replace(/-/g, '_'));
    if (!spec || spec.hidden || ['configfile', 'list', 'help', 'version'].includes(spec.name)) {
      const hint = closest(key, flags.filter((f) => f.kind === 'plugin' || f.kind === 'options').map((f) => f.name));
      throw new UsageError(`--configfile ${file}: unknown key '${key}'` + (hint ? ` (did you mean '${hint}'?)` : ''));
    }
    if (onCommandLine.has(spec.name)) continue; // the command line wins
    // Options belong to the plugin they were written for: a plugin named on the
    // command line replaces the file's plugin together with its options.
    const plugin = spec.kind === 'options' ? spec.name.replace(/_options$/, '') : undefined;
    if (plugin !== undefined && onCommandLine.has(plugin)) continue;
    const values = spec.repeats && Array.isArray(value) ? value : [value];
    for (const v of values) store(raw, spec, fromConfig(spec, v, `--configfile ${file}: ${key}`));
  }
}

function fromConfig(spec: FlagSpec, value: unknown, where: string): RawValue {
  if (spec.kind === 'options') {
    if (typeof value === 'string') return parseOptions(value, where);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new UsageError(`${where}: expected an object, got ${typeName(value)}`);
    }
    return value as PluginOptions;
  }
  if (spec.kind === 'optional-number') {
    if (typeof value !== 'number' || !(value > 0)) throw new UsageError(`${where}: expected a number of seconds, got ${typeName(value)}`);
    return value;
  }
  if (typeof value !== 'string' || value === '') throw new UsageError(`${where}: expected a name, got ${typeName(value)}`);
  return value;
}

const times = (n: number) => (n === 1 ? 'once' : `${n} times`);

function defaults(raw: Raw): Settings {
  const choice = (name: string): PluginChoice => ({
    name: (raw.get(name) as string | undefined) ?? byName.get(name)!.default!,
    options: (raw.get(`${name}_options`) as PluginOptions | undefined) ?? {},
  });
  const filterNames = (raw.get('filter') as string[] | undefined) ?? [];
  const filterOptions = (raw.get('filter_options') as PluginOptions[] | undefined) ?? [];
  if (filterOptions.length > filterNames.length) {
    throw new UsageError(`--filter_options given ${times(filterOptions.length)} but --filter ${filterNames.length === 0 ? 'not at all' : `only ${times(filterNames.length)}`}: the n-th --filter_options belongs to the n-th --filter`);
  }
  const help = raw.get('help') as string | true | undefined;
  return {
    input: choice('input'),
    filters: filterNames.map((name, i) => ({ name, options: filterOptions[i] ?? {} })),
    output: choice('output'),
    decoder: choice('decoder'),
    encoder: choice('encoder'),
    error: choice('error'),
    stats: raw.get('stats') as number | undefined,
    list: raw.get('list') === true,
    help,
    version: raw.get('version') === true,
    man: raw.get('man') === true,
  };
}
