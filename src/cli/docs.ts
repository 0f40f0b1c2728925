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
  // The program exits right after: into a pipe (`--man | less`) a write is still in flight until its callback.
  // A reader that quit early (`| head`) ends it quietly, as for the chain's output.
  await new Promise<void>((resolve) => {
    process.stdout.once('error', () => resolve());
    process.stdout.write(text, () => resolve());
  });
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

/** roff-safe text; characters beyond ASCII as roff's \[uXXXX], which groff reads without preconv. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .replace(/^([.'])/gm, '\\&$1')
    .replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

/**
 * Descriptions as roff: `code` in bold (man shows Markdown's backticks as they
 * are), and a blank line between paragraphs as a new paragraph.
 */
function prose(text: string): string {
  return roff(text)
    .replace(/`([^`\n]+)`/g, '\\fB$1\\fR')
    .replace(/\n{2,}/g, '\n.PP\n');
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
    prose('Reads messages from one input, passes them through a chain of filters in the order given, and writes them to one output. Inputs produce frames (a line of text, or one ZeroMQ message); the decoder turns each frame into a message, the encoder turns each message back into a frame. With no flags it reads NDJSON on standard input and writes NDJSON on standard output.'),
    '.PP',
    prose("One JSON object per line or frame is the wire format of Perl's Message::Passing, so both tools interoperate. Any JSON value is a message here (`3`, `\"text\"`, `null`, a list), but Perl's `message-pass` refuses a frame that is not an object or an array (JSON text must be an object or array): send it objects. A line read with `--decoder Null` and written with the JSON encoder is a JSON string, which Perl refuses too."),
    '.SH ERRORS AND COUNTS',
    prose(`Empty lines are skipped. A frame that cannot be decoded, a message a filter throws on, a value the encoder cannot write, a message the output refuses, and a line longer than max_line_length each become one JSON record on the error output (\`--error\`; see \`--error_encoder\`): {"error": KIND, "reason": WHY, "source": "INPUT:LINE", "frame": TEXT}, where frame is cut at ${ERROR_FRAME_LIMIT} characters (base64, with "encoding": "base64", when it is not valid UTF-8). Every message read is written, dropped on purpose by a filter, or reported there.`),
    '.PP',
    prose('A record from a filter, the encoder or the output also has `"stage"`: `"filter NAME"`, `"encoder NAME"` or `"output NAME"`. Its `source` is the input position of the message, through every filter before it (a message a list made keeps the position of the one it came from). A message a filter made on its own (`flush()`, `push`, a timer) has `"source": "filter:NAME"`; an output record about lines that passed through untouched (no filter), or about a message written more than 8 batches earlier, keeps the output\'s own source. A value JSON cannot hold (a BigInt, an object that contains itself) is copied as Node\'s util.inspect shows it.'),
    '.PP',
    prose('`--stats` counts frames read (`in`), messages filters made beyond those they were given (`created`: the extra elements of a list, `flush()`, `push`, timers), messages written (`out`), dropped or merged on purpose by a filter (`dropped`) and records sent to the error output (`errors`): in + created = out + dropped + errors.'),
    '.SH OPTIONS',
    ...flags.filter((f) => !f.hidden).flatMap((f) => [
      '.TP',
      `.B \\-\\-${roff(f.name)}${valueLabel(f, (v) => `\\fI${v}\\fR`)}`,
      prose(described(f) + (f.default && f.kind === 'plugin' ? ` Default: ${f.default}.` : '') + (f.kind === 'optional-number' ? ` Default: ${f.default}.` : '')),
    ]),
    '.PP',
    prose('Every flag may also be written in kebab case (`--input-options`). OPTS is a JSON5 object; strict JSON works. Plugin names are case-insensitive, and a leading + is ignored.'),
  ];
  for (const role of Object.keys(roleTitles) as Role[]) {
    out.push(`.SH ${roleTitles[role].toUpperCase()}`);
    for (const { entry, plugin } of plugins.filter((p) => p.entry.role === role)) {
      out.push('.SS ' + roff(entry.name + (entry.aliases?.length ? ` (also ${entry.aliases.join(', ')})` : '')), prose(plugin.summary));
      if (plugin.description) out.push('.PP', prose(plugin.description));
      for (const [key, spec] of Object.entries(plugin.options)) {
        out.push('.TP', `.I ${roff(key)}` + (spec.aliases?.length ? ` (${roff(spec.aliases.join(', '))})` : ''), prose(`${typeLabel(spec)}, ${defaultLabel(spec)}. ${spec.description}`));
      }
      for (const example of plugin.examples ?? []) out.push('.PP', '.nf', roff(example), '.fi');
    }
    if (role === 'filter') {
      out.push(
        '.SS User modules',
        prose('`--filter ./path/mod.js` (a NAME with a / or ending .js, .mjs or .cjs) loads a module from the current folder; any other NAME that is not built in is an npm package resolved from the current folder. CommonJS and ES modules both load. The default export is a function `(message, options) => result`; or a class constructed once with options whose instances have `filter(message)` and optionally `flush()` and `close()`; or an object with `filter(message)`, `flush()` and `close()`. A named export `create(options)` may instead return such an object. result is a message, undefined or null to drop it, an array whose elements each go on, or a Promise of those; order is kept. A filter that throws sends that message to the error output. A constructor or `flush()` that fails ends the run with status 1 and a line naming the filter.'),
        '.PP',
        prose('The class constructor and `create` get a second argument, the filter context, which the built-in filters use too:'),
        ...[
          ['push(message) or push([message, ...])', 'Sends messages on at any time (a timer, a callback), in order with the stream; a string is one message. undefined, null, a function or a symbol is not a message: an error record naming the filter. What is still pending at the end belongs in `flush()`.'],
          ['schedule(ms, fire)', 'Calls `fire()` after ms milliseconds, in stream order (never in the middle of a batch), and sends on what it returns, as a filter result. Returns a function that cancels it.'],
          ['clock.now()', 'The time in milliseconds. With `schedule`, it follows the chain\'s clock, which a test can drive by hand: use them rather than setTimeout and Date.now().'],
          ['keyed({maxKeys, evict(key, value)})', 'State per key, bounded: `set(key, value)` past maxKeys evicts the oldest key and returns the messages its `evict` made of it, to send on; `get`, `has`, `take(key)`, `takeAll()` and `size`. While a message is held there, an input that acknowledges (File checkpoints, Redis) does not move past it.'],
          ['warn(text), reportError(record), stopping', 'One line on stderr; a record on the error output; an AbortSignal that aborts when the program stops.'],
        ].flatMap(([name, text]) => ['.TP', `.B ${roff(name!)}`, prose(text!)]),
        '.PP',
        prose('An exception thrown from a timer or a callback of the module is an error record naming the filter, and the run goes on. Messages a filter adds count as created in `--stats`, those it drops or merges as dropped.'),
      );
    }
  }
  out.push(
    '.SH EXIT STATUS',
    '.TP', '0', prose('The input ended (or SIGINT/SIGTERM arrived, or the output pipe closed) and everything was flushed. With `--daemonize`: the daemon has started.'),
    '.TP', '1', prose('A runtime failure: address in use, unreadable file, a filter that cannot start or flush, messages that could not be delivered within linger, a `--pid_file` naming a running process, a `--user` or `--io_priority` the system refuses.'),
    '.TP', '2', prose('A usage error: unknown flag, plugin or option, bad JSON5, missing module, unknown user. Nothing was started.'),
    '.TP', '130, 143', prose('A second SIGINT (130) or SIGTERM (143) arrived while the first drained: the run ended at once, with one line saying how many messages were left behind.'),
    '.SH SIGNALS',
    prose(
      'SIGINT and SIGTERM stop reading, drain the chain, flush the outputs and exit 0; a second signal exits at once, saying how many messages it left behind (signals within half a second of the first are the same stop, as timeout(1) sends its signal twice). ' +
        'An output waiting for a peer with no time limit (ZeroMQ linger -1) gives up once nothing went out for 3 s after the signal. ' +
        'The File output reopens its file on SIGHUP. The `--pid_file` is removed at exit either way.',
    ),
    '.SH ENVIRONMENT',
    '.TP', '.B DEBUG', prose('When set, errors print their stack trace.'),
    '.SH EXAMPLES',
    '.nf',
    roff(`echo '{"hello":"world"}' | ${PROGRAM}`),
    roff(`${PROGRAM} --input ZeroMQ --input_options '{socket_bind: "tcp://*:5552"}' --filter ./tag.js --output File --output_options '{filename: "app.log"}'`),
    roff(`${PROGRAM} --configfile pipeline.json5 --stats 10`),
    roff(`${PROGRAM} --daemonize --pid_file /run/mp.pid --user logs --input TCP --input_options '{bind: "0.0.0.0:514"}' --output File --output_options '{filename: "/var/log/all.log"}' --error File --error_options '{filename: "/var/log/mp-errors.log"}'`),
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
