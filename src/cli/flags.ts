/**
 * Every command-line flag, once: the parser (yargs, in args.ts), --help, the man
 * page and completion read this table. Each flag may also be written in kebab case
 * (--input-options for input_options).
 */
export interface FlagSpec {
  name: string;
  /** 'plugin', 'options' and 'string' take a value; 'optional-*' may; 'boolean' takes none. */
  kind: 'plugin' | 'options' | 'string' | 'boolean' | 'optional-number' | 'optional-string';
  /** May be given more than once (the values make a list, in order). */
  repeats?: boolean;
  /** Which plugin role a 'plugin' flag names. */
  role?: 'input' | 'output' | 'filter' | 'codec';
  value?: string;
  default?: string;
  description: string;
  /** Not shown in help (internal). */
  hidden?: boolean;
  /** One-letter forms, written -h. */
  short?: readonly string[];
  /** The values a 'string' flag takes, matched in any case. */
  choices?: readonly string[];
}

export const flags: readonly FlagSpec[] = [
  { name: 'input', kind: 'plugin', role: 'input', value: 'NAME', default: 'STDIN', description: 'Where messages come from.' },
  { name: 'input_options', kind: 'options', value: 'OPTS', description: "The input's options, a JSON5 object." },
  { name: 'filter', kind: 'plugin', role: 'filter', repeats: true, value: 'NAME', description: 'A filter, built in or a module path (./tag.js) or package; repeat for a chain, run in the order given.' },
  { name: 'filter_options', kind: 'options', repeats: true, value: 'OPTS', description: 'Options of the filter given at the same position.' },
  { name: 'output', kind: 'plugin', role: 'output', value: 'NAME', default: 'STDOUT', description: 'Where messages go.' },
  { name: 'output_options', kind: 'options', value: 'OPTS', description: "The output's options, a JSON5 object." },
  { name: 'decoder', kind: 'plugin', role: 'codec', value: 'NAME', default: 'JSON', description: 'Turns each frame read into a message.' },
  { name: 'decoder_options', kind: 'options', value: 'OPTS', description: "The decoder's options." },
  { name: 'encoder', kind: 'plugin', role: 'codec', value: 'NAME', default: 'JSON', description: 'Turns each message into a frame to write.' },
  { name: 'encoder_options', kind: 'options', value: 'OPTS', description: "The encoder's options." },
  { name: 'error', kind: 'plugin', role: 'output', value: 'NAME', default: 'STDERR', description: 'Where error records go, one JSON object each (see --error_encoder).' },
  { name: 'error_options', kind: 'options', value: 'OPTS', description: "The error output's options." },
  { name: 'error_encoder', kind: 'plugin', role: 'codec', value: 'NAME', default: 'JSON', description: 'Turns each error record into a frame for the error output.' },
  { name: 'error_encoder_options', kind: 'options', value: 'OPTS', description: "The error encoder's options." },
  { name: 'configfile', kind: 'string', value: 'FILE', description: 'A JSON5 file holding the same keys as these flags; flags override it.' },
  { name: 'stats', kind: 'optional-number', value: 'SECONDS', default: '10', description: 'Print counts (in, created, out, dropped, errors) and the rate on stderr every SECONDS, and once at the end.' },
  {
    name: 'daemonize',
    kind: 'boolean',
    description:
      'Run in the background: a new session, standard input, output and error on /dev/null, the same working folder. The command returns (status 0) once the pipeline has started, or with its error and status when it cannot start. Needs an input other than STDIN and an output other than STDOUT.',
  },
  {
    name: 'pid_file',
    kind: 'string',
    value: 'FILE',
    description: "Write the process id to FILE at start and remove it at exit. Refuses to start while FILE names a running process; a file left by one that died is replaced.",
  },
  {
    name: 'user',
    kind: 'string',
    value: 'USER',
    description: "Become USER (a name or a number; its group and groups too) once sockets are bound and the outputs' files opened, before any input is read. Needs root.",
  },
  {
    name: 'io_priority',
    kind: 'string',
    value: 'CLASS',
    choices: ['none', 'be', 'rt', 'idle'],
    description: "The I/O scheduling class, as Perl's message-pass sets it: none, be (best effort), rt (real time, needs root) or idle, at the class's highest level. Linux only, through ionice (util-linux).",
  },
  { name: 'list', kind: 'boolean', description: 'List every plugin with a one-line summary.' },
  { name: 'help', kind: 'optional-string', short: ['h'], value: 'PLUGIN', description: "Show this help, or a plugin's options, defaults and examples." },
  { name: 'version', kind: 'boolean', short: ['v', 'V'], description: 'Print the version.' },
  { name: 'man', kind: 'boolean', hidden: true, description: 'Print the man page (roff).' },
];
