import { readFileSync } from 'node:fs';
import { SHELLS, type Settings } from './args.js';
import { complete, completionScript } from './completion.js';
import { ERROR_FRAME_LIMIT, UsageError } from '../core/errors.js';
import { flags, type FlagSpec } from './flags.js';
import { closest, type OptionSpec } from '../core/options.js';
import type { AnyPlugin, Role } from '../core/plugin.js';
import { findEntry, registry, type RegistryEntry } from './registry.js';

const PROGRAM = 'message-passing';

const roleTitles: Record<Role, string> = { input: 'Inputs', output: 'Outputs', filter: 'Filters', codec: 'Decoders and encoders' };
const roleFlag: Record<Role, string> = { input: 'input', output: 'output', filter: 'filter', codec: 'decoder' };

/** --help, --help PLUGIN, --list, --version, --man and `completion`: all read the plugins' own declarations. */
export async function printDocs(settings: Settings): Promise<void> {
  let text: string;
  if (settings.completing !== undefined) text = await completions(settings.completing, settings.completion);
  else if (settings.completion !== undefined) text = completion(settings.completion);
  else if (settings.version) text = `${PROGRAM} ${version()}\n`;
  else if (typeof settings.help === 'string') text = await pluginHelp(settings.help);
  else if (settings.list) text = await list();
  else if (settings.man) text = await manPage();
  else text = usage();
  process.stdout.write(text);
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function loaded(): Promise<Array<{ entry: RegistryEntry; plugin: AnyPlugin }>> {
  return Promise.all(registry.map(async (entry) => ({ entry, plugin: (await entry.load()).default })));
}

/** The description, with the one-letter forms. */
function described(f: FlagSpec): string {
  return f.description + (f.short?.length ? ` Also ${f.short.map((s) => `-${s}`).join(', ')}.` : '');
}

/** ' VALUE', ' [VALUE]' for an optional one, or nothing for a switch; `style` marks up the name. */
function valueLabel(f: FlagSpec, style = (value: string) => value): string {
  if (f.kind === 'boolean') return '';
  return f.kind.startsWith('optional') ? ` [${style(f.value!)}]` : ` ${style(f.value!)}`;
}

function synopsis(): string {
  return flags
    .filter((f) => !f.hidden)
    .map((f) => {
      return `[--${f.name}${valueLabel(f)}]${f.repeats ? '...' : ''}`;
    })
    .join(' ');
}

function usage(): string {
  const rows = flags.filter((f) => !f.hidden).map((f) => {
    const value = valueLabel(f);
    const dflt = f.default && f.kind === 'plugin' ? ` (default ${f.default})` : '';
    return [`--${f.name}${value}`, `${described(f)}${dflt}`];
  });
  return [
    `Usage: ${PROGRAM} [--input NAME] [--filter NAME]... [--output NAME] [options]`,
    '',
    'Moves messages from one input, through filters, to one output. With no flags:',
    'NDJSON on standard input to NDJSON on standard output.',
    '',
    ...table(rows),
    '',
    'Flags may be written --input_options or --input-options. OPTS is a JSON5 object.',
    `Subcommand: ${PROGRAM} completion [bash|zsh] prints a shell completion script.`,
    '',
    'Examples:',
    `  ${PROGRAM} < events.ndjson > copy.ndjson`,
    `  ${PROGRAM} --input ZeroMQ --input_options '{socket_bind: "tcp://*:5552"}' --output File --output_options '{filename: "app.log"}'`,
    `  ${PROGRAM} --filter ./tag.js --filter_options '{host: "web-1"}'`,
    '',
    `See --list for every plugin, --help PLUGIN for its options, and man ${PROGRAM}.`,
    '',
  ].join('\n');
}

function table(rows: string[][], indent = '  '): string[] {
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  return rows.map(([left, right]) => `${indent}${left!.padEnd(width)}${right}`);
}

async function list(): Promise<string> {
  const plugins = await loaded();
  const out: string[] = [];
  for (const role of Object.keys(roleTitles) as Role[]) {
    out.push(`${roleTitles[role]}:`);
    const rows = plugins
      .filter((p) => p.entry.role === role)
      .map((p) => [p.entry.name + (p.entry.aliases?.length ? ` (${p.entry.aliases.join(', ')})` : ''), p.plugin.summary]);
    if (role === 'filter') rows.push(['./file.js, package', 'A user module: a function, a class, an object with filter(), or create(options).']);
    out.push(...table(rows), '');
  }
  out.push(`${PROGRAM} --help NAME shows a plugin's options.`, '');
  return out.join('\n');
}

function typeLabel(spec: OptionSpec): string {
  if (spec.type === 'string' && spec.choices) return spec.choices.join('|');
  if (spec.type === 'strings') return 'string or list';
  return spec.type;
}

function defaultLabel(spec: OptionSpec): string {
  if (spec.required) return 'required';
  if (spec.default === undefined) return 'optional';
  return `default ${JSON.stringify(spec.default)}`;
}

function optionRows(plugin: AnyPlugin): string[][] {
  return Object.entries(plugin.options).map(([key, spec]) => [
    key + (spec.aliases?.length ? ` (${spec.aliases.join(', ')})` : ''),
    `${typeLabel(spec)}, ${defaultLabel(spec)}. ${spec.description}`,
  ]);
}

async function pluginHelp(name: string): Promise<string> {
  const matches = (Object.keys(roleTitles) as Role[]).map((role) => findEntry(role, name)).filter((e) => e !== undefined);
  if (matches.length === 0) {
    const known = [...new Set(registry.flatMap((e) => [e.name, ...(e.aliases ?? [])]))];
    const hint = closest(name, known);
    throw new UsageError(`no plugin named '${name}'` + (hint ? ` (did you mean '${hint}'?)` : ` (known: ${known.join(', ')})`));
  }
  const out: string[] = [];
  for (const entry of matches) {
    const plugin = (await entry.load()).default;
    out.push(`${entry.name} (${entry.role === 'codec' ? 'decoder/encoder' : entry.role}): ${plugin.summary}`);
    if (entry.aliases?.length) out.push(`Also called: ${entry.aliases.join(', ')}`);
    if (plugin.description) out.push('', ...wrap(plugin.description, 78, '  '));
    out.push('');
    const rows = optionRows(plugin);
    if (rows.length) out.push(`Options (--${roleFlag[entry.role]}_options):`, ...table(rows), '');
    else out.push('No options.', '');
    if (plugin.examples?.length) out.push('Examples:', ...plugin.examples.map((e) => `  ${e}`), '');
  }
  return out.join('\n');
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width - indent.length) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** roff-safe text. */
function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

export async function manPage(): Promise<string> {
  const plugins = await loaded();
  const out = [
    `.TH MESSAGE\\-PASSING 1 "" "${PROGRAM} ${version()}" "User Commands"`,
    '.SH NAME',
    `${PROGRAM} \\- move messages between processes and hosts, Unix\\-pipe style`,
    '.SH SYNOPSIS',
    `.B ${roff(PROGRAM)}`,
    roff(synopsis()),
    '.br',
    `.B ${roff(PROGRAM)} completion`,
    '[bash|zsh]',
    '.SH DESCRIPTION',
    roff('Reads messages from one input, passes them through a chain of filters in the order given, and writes them to one output. Inputs produce frames (a line of text, or one ZeroMQ message); the decoder turns each frame into a message, the encoder turns each message back into a frame. With no flags it reads NDJSON on standard input and writes NDJSON on standard output. One JSON object per line or frame is the wire format of Perl\'s Message::Passing, so both tools interoperate.'),
    '.PP',
    roff(`Empty lines are skipped. A frame that cannot be decoded, a message a filter throws on, and a line longer than max_line_length each become one JSON record on the error output: {"error": KIND, "reason": WHY, "source": "INPUT:LINE", "frame": TEXT}, where frame is cut at ${ERROR_FRAME_LIMIT} characters (base64, with "encoding": "base64", when it is not valid UTF-8). Every message read is written, dropped on purpose by a filter, or reported there.`),
    '.SH OPTIONS',
    ...flags.filter((f) => !f.hidden).flatMap((f) => [
      '.TP',
      `.B \\-\\-${roff(f.name)}${valueLabel(f, (v) => `\\fI${v}\\fR`)}`,
      roff(described(f) + (f.default && f.kind === 'plugin' ? ` Default: ${f.default}.` : '') + (f.kind === 'optional-number' ? ` Default: ${f.default}.` : '')),
    ]),
    '.PP',
    roff('Every flag may also be written in kebab case (--input-options). OPTS is a JSON5 object; strict JSON works. Plugin names are case-insensitive, and a leading + is ignored.'),
  ];
  for (const role of Object.keys(roleTitles) as Role[]) {
    out.push(`.SH ${roleTitles[role].toUpperCase()}`);
    for (const { entry, plugin } of plugins.filter((p) => p.entry.role === role)) {
      out.push('.SS ' + roff(entry.name + (entry.aliases?.length ? ` (also ${entry.aliases.join(', ')})` : '')), roff(plugin.summary));
      if (plugin.description) out.push('.PP', roff(plugin.description));
      for (const [key, spec] of Object.entries(plugin.options)) {
        out.push('.TP', `.I ${roff(key)}` + (spec.aliases?.length ? ` (${roff(spec.aliases.join(', '))})` : ''), roff(`${typeLabel(spec)}, ${defaultLabel(spec)}. ${spec.description}`));
      }
      for (const example of plugin.examples ?? []) out.push('.PP', '.nf', roff(example), '.fi');
    }
    if (role === 'filter') {
      out.push(
        '.SS User modules',
        roff('--filter ./path/mod.js (a NAME with a / or ending .js, .mjs or .cjs) loads a module from the current folder; any other NAME that is not built in is an npm package resolved from the current folder. CommonJS and ES modules both load. The default export is a function (message, options) => result; or a class constructed once with options whose instances have filter(message) and optionally flush() and close(); or an object with filter(message), flush() and close(). A named export create(options) may instead return such an object. result is a message, undefined or null to drop it, an array whose elements each go on, or a Promise of those; order is kept. A filter that throws sends that message to the error output.'),
      );
    }
  }
  out.push(
    '.SH EXIT STATUS',
    '.TP', '0', roff('The input ended (or SIGINT/SIGTERM arrived, or the output pipe closed) and everything was flushed.'),
    '.TP', '1', roff('A runtime failure: address in use, unreadable file, messages that could not be delivered within linger.'),
    '.TP', '2', roff('A usage error: unknown flag, plugin or option, bad JSON5, missing module. Nothing was started.'),
    '.SH SIGNALS',
    roff('SIGINT and SIGTERM stop reading, drain the chain, flush the outputs and exit 0; a second signal exits at once. The File output reopens its file on SIGHUP.'),
    '.SH ENVIRONMENT',
    '.TP', '.B DEBUG', roff('When set, errors print their stack trace.'),
    '.SH EXAMPLES',
    '.nf',
    roff(`echo '{"hello":"world"}' | ${PROGRAM}`),
    roff(`${PROGRAM} --input ZeroMQ --input_options '{socket_bind: "tcp://*:5552"}' --filter ./tag.js --output File --output_options '{filename: "app.log"}'`),
    roff(`${PROGRAM} --configfile pipeline.json5 --stats 10`),
    '.fi',
    '.SH SEE ALSO',
    roff('message-pass(1), the Perl original; jq(1); zmq(7).'),
    '',
  );
  return out.join('\n');
}

/** yargs's script for bash or zsh (completion.ts). */
function completion(shell: string): string {
  if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`completion: unknown shell '${shell}' (choose ${SHELLS.join(' or ')})`);
  return completionScript(shell);
}

/** One answer a line; none at all rather than an error, since a TAB should never print one. */
async function completions(words: readonly string[], shell: string | undefined): Promise<string> {
  try {
    const answers = await complete(words, shell);
    return answers.length ? `${answers.join('\n')}\n` : '';
  } catch (error) {
    if (process.env.DEBUG) throw error;
    return '';
  }
}
