import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Argv } from 'yargs';
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
  /** Encodes error records for the error output. */
  errorEncoder: PluginChoice;
  /** Detach into the background (cli/daemon.ts). */
  daemonize: boolean;
  pidFile?: string;
  /** Whom to run as once sockets are bound and files opened. */
  user?: string;
  ioPriority?: IoPriority;
  /** Seconds between stats lines; undefined when --stats was not given. */
  stats?: number;
  list: boolean;
  /** true for plain --help, a plugin name for --help PLUGIN. */
  help?: string | true;
  version: boolean;
  man: boolean;
  /** `message-passing completion [SHELL]`: bash or zsh. */
  completion?: string;
  /**
   * yargs's completion protocol, `message-passing --get-yargs-completions WORD...`
   * (what the completion script runs): the words of the command line being
   * completed, the last one the word under the cursor. `completion` is then the
   * shell asking.
   */
  completing?: string[];
}

export type IoPriority = 'none' | 'be' | 'rt' | 'idle';

type RawValue = string | number | boolean | PluginOptions | undefined;
type Raw = Map<string, RawValue | RawValue[]>;

const PROGRAM = 'message-passing';
/** yargs's completion protocol: `message-passing --get-yargs-completions WORD...` (see completion.ts). */
export const COMPLETION_KEY = 'get-yargs-completions';
export const SHELLS = ['bash', 'zsh'] as const;

const byName = new Map(flags.map((f) => [f.name, f]));

/** The flag a spelling names: `input_options`, `input-options`, or a short form such as `h`. */
export function flagNamed(spelling: string): FlagSpec | undefined {
  const spec = byName.get(spelling.replace(/-/g, '_')) ?? flags.find((f) => f.short?.includes(spelling));
  // --man is internal: only that exact spelling.
  return spec?.hidden && spelling !== spec.name ? undefined : spec;
}

/**
 * Where yargs is loaded from, on first use: an empty command line, the most
 * common one, needs no parsing and skips loading it. scripts/bundle.mjs points
 * this at the bundle's own copy, dist/message-passing-yargs.cjs, which loads
 * yargs minified and with a V8 code cache (scripts/yargs-loader.cjs).
 */
const YARGS_MODULE = 'yargs';
type YargsFactory = (args?: readonly string[]) => Argv;
let yargsFactory: YargsFactory | undefined;

function yargs(): Argv {
  if (!yargsFactory) {
    const loaded = createRequire(import.meta.url)(YARGS_MODULE) as YargsFactory | { default: YargsFactory };
    yargsFactory = typeof loaded === 'function' ? loaded : loaded.default;
  }
  return yargsFactory();
}

/** The kebab-case spelling, when it differs. */
const kebab = (name: string): string[] => (name.includes('_') ? [name.replace(/_/g, '-')] : []);

/**
 * The flag table as a yargs parser. yargs only takes the command line apart; it
 * prints nothing and exits nothing: its help, version, strict mode and locale
 * guessing are off, and every message the user sees is ours (parseArgs).
 * Configured in a few calls, since each yargs call costs start-up time.
 */
export function parser(): Argv {
  const aliases: Record<string, string[]> = {};
  for (const f of flags) {
    const names = [...kebab(f.name), ...(f.short ?? [])];
    if (names.length) aliases[f.name] = names;
  }
  return (
    yargs()
      .scriptName(PROGRAM)
      .help(false)
      .version(false)
      .strict(false)
      .exitProcess(false)
      .detectLocale(false)
      .parserConfiguration({
        'camel-case-expansion': false,
        'boolean-negation': false,
        'dot-notation': false,
        'parse-numbers': false,
        'parse-positional-numbers': false,
        // Repeats make lists (the last one counts for a flag that does not repeat).
        'duplicate-arguments-array': true,
        'greedy-arrays': false,
        // An unknown --flag lands in argv._, where parseArgs finds it.
        'unknown-options-as-args': true,
        'strip-aliased': true,
        // Words after `--` go to argv['--'], to be reported as such.
        'populate--': true,
      })
      .fail((message, error) => {
        throw new UsageError(message || describe(error));
      })
      .string(flags.filter((f) => f.kind === 'plugin' || f.kind === 'options' || f.kind === 'string').map((f) => f.name))
      .boolean(flags.filter((f) => f.kind === 'boolean').map((f) => f.name))
      // An optional value is left untyped: yargs takes the next word unless it is a flag, else true.
      .options(Object.fromEntries(flags.filter((f) => f.kind.startsWith('optional')).map((f) => [f.name, {}])))
      .alias(aliases)
  );
}

export function parseArgs(argv: readonly string[]): Settings {
  if (argv[0] === `--${COMPLETION_KEY}`) {
    return { ...defaults(new Map()), completion: callerShell(), completing: argv.slice(1) };
  }
  if (argv[0] === 'completion') {
    const shell = argv[1] ?? 'bash';
    if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`completion: unknown shell '${shell}' (choose ${SHELLS.join(' or ')})`);
    if (argv.length > 2) throw new UsageError(`unexpected argument '${argv[2]}' after completion ${shell}`);
    return { ...defaults(new Map()), completion: shell };
  }
  if (argv.length === 0) return defaults(new Map());
  // yargs reads `--list=yes` as false; a switch takes no value at all.
  for (const token of argv) {
    const match = /^--?([^=]+)=(.*)$/s.exec(token);
    const spec = match && flagNamed(match[1]!);
    if (spec?.kind === 'boolean' && match![2] !== 'true' && match![2] !== 'false') throw new UsageError(`--${spec.name} takes no value`);
  }
  const parsed = parser().parseSync([...argv]) as Record<string, unknown> & { _: Array<string | number>; '--'?: Array<string | number> };
  const unknown = Object.keys(parsed).filter((key) => !['_', '--', '$0'].includes(key) && !byName.has(key)).map((key) => `--${key}`);
  const stray = [...parsed._.map(String), ...unknown].sort((a, b) => position(argv, a) - position(argv, b))[0];
  if (stray !== undefined) throw strayError(stray);
  const afterDashes = parsed['--']?.[0];
  if (afterDashes !== undefined) throw strayError(String(afterDashes), false);

  const raw: Raw = new Map();
  for (const spec of flags) {
    const value = parsed[spec.name];
    if (value === undefined) continue;
    const values = Array.isArray(value) ? (value as unknown[]) : [value];
    // A flag that does not repeat: the last one counts.
    for (const v of spec.repeats ? values : values.slice(-1)) store(raw, spec, convert(spec, v as string | boolean, `--${spec.name}`));
  }
  const file = raw.get('configfile');
  if (typeof file === 'string') mergeConfig(raw, file);
  return defaults(raw);
}

/** Where a word yargs did not take shows first on the command line, for the first problem to be the one reported. */
function position(argv: readonly string[], word: string): number {
  const at = argv.findIndex((token) => token === word || token.startsWith(`${word}=`));
  return at < 0 ? argv.length : at;
}

function strayError(word: string, mayBeFlag = true): UsageError {
  if (!mayBeFlag || !/^-./.test(word)) return new UsageError(`unexpected argument '${word}': every setting is a flag such as --input NAME (see --help)`);
  const given = word.replace(/=.*$/s, '');
  const hint = closest(given.replace(/^-+/, '').replace(/-/g, '_'), flags.filter((f) => !f.hidden).map((f) => f.name));
  return new UsageError(`unknown flag ${given}` + (hint ? ` (did you mean --${hint}?)` : ' (see --help)'));
}

/** The shell asking for completions, as yargs tells it (it answers zsh with descriptions). */
function callerShell(): string {
  return [process.env.SHELL, process.env.ZSH_NAME].some((v) => v?.includes('zsh')) ? 'zsh' : 'bash';
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

/** One value from yargs: a string, or true/false for a flag given without one. */
function convert(spec: FlagSpec, value: string | boolean, where: string): RawValue {
  switch (spec.kind) {
    case 'boolean':
      return value === true || value === 'true';
    case 'optional-number': {
      if (value === true) return Number(spec.default);
      const n = Number(value);
      if (!(n > 0)) throw new UsageError(`${where} takes a number of seconds greater than 0, got '${value}'`);
      return n;
    }
    case 'optional-string':
      return value;
    default:
      // yargs gives '' for a flag at the end or before another flag: `--input --output X` forgot the input's name.
      if (typeof value !== 'string' || value === '') throw new UsageError(`${where} needs a value (${spec.value})`);
      return spec.kind === 'options' ? parseOptions(value, where) : chosen(spec, value, where);
  }
}

/** A value of a flag with choices, in its own spelling whatever the case given. */
function chosen(spec: FlagSpec, value: string, where: string): string {
  if (!spec.choices) return value;
  const choice = spec.choices.find((c) => c.toLowerCase() === value.toLowerCase());
  if (choice === undefined) {
    const hint = closest(value.toLowerCase(), spec.choices);
    throw new UsageError(`${where} takes ${spec.choices.join(', ')}, got '${value}'` + (hint ? ` (did you mean '${hint}'?)` : ''));
  }
  return choice;
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
  if (spec.kind === 'boolean') {
    if (typeof value !== 'boolean') throw new UsageError(`${where}: expected true or false, got ${typeName(value)}`);
    return value;
  }
  if (typeof value !== 'string' || value === '') throw new UsageError(`${where}: expected ${spec.kind === 'plugin' ? 'a name' : `a ${spec.value!.toLowerCase()}`}, got ${typeName(value)}`);
  return chosen(spec, value, where);
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
    errorEncoder: choice('error_encoder'),
    daemonize: raw.get('daemonize') === true,
    pidFile: raw.get('pid_file') as string | undefined,
    user: raw.get('user') as string | undefined,
    ioPriority: raw.get('io_priority') as IoPriority | undefined,
    stats: raw.get('stats') as number | undefined,
    list: raw.get('list') === true,
    help,
    version: raw.get('version') === true,
    man: raw.get('man') === true,
  };
}
