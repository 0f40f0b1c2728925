// The command-line parser (yargs driven by src/cli/flags.ts) and shell completion, in process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parseArgs, type Settings } from '../../src/cli/args.js';
import { candidates, complete, completionScript } from '../../src/cli/completion.js';
import { flags } from '../../src/cli/flags.js';
import { registry, type RegistryEntry } from '../../src/cli/registry.js';
import { UsageError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mp-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The UsageError parseArgs throws; fails the test when it throws none or something else. */
function usageError(argv: string[]): string {
  try {
    parseArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`no usage error for ${JSON.stringify(argv)}`);
}

function configFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const defaults: Settings = {
  input: { name: 'STDIN', options: {} },
  filters: [],
  output: { name: 'STDOUT', options: {} },
  decoder: { name: 'JSON', options: {} },
  encoder: { name: 'JSON', options: {} },
  error: { name: 'STDERR', options: {} },
  errorEncoder: { name: 'JSON', options: {} },
  daemonize: false,
  pidFile: undefined,
  user: undefined,
  ioPriority: undefined,
  stats: undefined,
  list: false,
  help: undefined,
  version: false,
  man: false,
};

describe('parseArgs', () => {
  it('gives the defaults for an empty command line', () => {
    expect(parseArgs([])).toEqual(defaults);
  });

  it("takes Perl's spelling, kebab case and --flag=value, for every flag that takes a value", () => {
    for (const flag of flags.filter((f) => f.kind === 'plugin' || f.kind === 'options')) {
      const value = flag.kind === 'options' ? '{a: 1}' : 'Name';
      const expected = flag.kind === 'options' ? { a: 1 } : 'Name';
      const filterFirst = flag.name === 'filter_options' ? ['--filter', 'Null'] : [];
      const spellings = [
        [`--${flag.name}`, value],
        [`--${flag.name.replace(/_/g, '-')}`, value],
        [`--${flag.name}=${value}`],
        [`--${flag.name.replace(/_/g, '-')}=${value}`],
      ];
      for (const spelling of spellings) {
        const settings = parseArgs([...filterFirst, ...spelling]) as unknown as Record<string, { name: string; options: object }> & { filters: Array<{ name: string; options: object }> };
        // error_encoder is Settings' errorEncoder.
        const role = flag.name.replace(/_options$/, '').replace(/_(\w)/g, (_, letter: string) => letter.toUpperCase());
        const choice = role === 'filter' ? settings.filters[0]! : settings[role]!;
        expect(flag.kind === 'options' ? choice.options : choice.name, spelling.join(' ')).toEqual(expected);
      }
    }
  });

  it('keeps plugin names as written (they are matched case-insensitively later) and a value holding =', () => {
    const settings = parseArgs(['--input', 'stdin', '--output=+StdOut', '--decoder', 'raw', '--input_options={"a": "b=c"}']);
    expect(settings.input).toEqual({ name: 'stdin', options: { a: 'b=c' } });
    expect(settings.output.name).toBe('+StdOut');
    expect(settings.decoder.name).toBe('raw');
  });

  it('reads options as JSON5 (comments, unquoted keys, trailing commas) and as strict JSON', () => {
    expect(parseArgs(['--input_options', "{max_line_length: 10, /* bytes */ tags: ['a',],}"]).input.options).toEqual({ max_line_length: 10, tags: ['a'] });
    expect(parseArgs(['--output-options', '{"path": "x.log"}']).output.options).toEqual({ path: 'x.log' });
  });

  it('rejects options that are not a JSON5 object, on one line', () => {
    expect(usageError(['--input_options', '[1, 2]'])).toBe(`--input_options: expected an object like '{key: "value"}', got a list`);
    expect(usageError(['--input_options', '{max_line_length:\n'])).toMatch(/^--input_options: not valid JSON5 \(.*\): \{max_line_length:$/);
  });

  it('a flag that does not repeat: the last one counts', () => {
    expect(parseArgs(['--input', 'A', '--input', 'B', '--input-options', '{a: 1}', '--input_options', '{b: 2}']).input).toEqual({ name: 'B', options: { b: 2 } });
  });

  describe('repeated --filter', () => {
    it('keeps the order given; the n-th --filter_options belongs to the n-th --filter, in either spelling', () => {
      const settings = parseArgs(['--filter', 'a', '--filter_options', '{n: 1}', '--filter', 'b', '--filter=c', '--filter-options', '{n: 2}', '--filter_options={n: 3}']);
      expect(settings.filters).toEqual([
        { name: 'a', options: { n: 1 } },
        { name: 'b', options: { n: 2 } },
        { name: 'c', options: { n: 3 } },
      ]);
    });

    it('gives filters without options of their own {}', () => {
      expect(parseArgs(['--filter', 'a', '--filter', 'b', '--filter_options', '{x: 1}']).filters).toEqual([
        { name: 'a', options: { x: 1 } },
        { name: 'b', options: {} },
      ]);
    });

    it('is an error when there are more --filter_options than --filter', () => {
      expect(usageError(['--filter_options', '{a: 1}'])).toBe('--filter_options given once but --filter not at all: the n-th --filter_options belongs to the n-th --filter');
      expect(usageError(['--filter', 'Null', '--filter_options', '{}', '--filter_options', '{}'])).toBe(
        '--filter_options given 2 times but --filter only once: the n-th --filter_options belongs to the n-th --filter',
      );
    });
  });

  describe('--stats [SECONDS]', () => {
    it('is off by default, 10 seconds without a number, else the number', () => {
      expect(parseArgs([]).stats).toBeUndefined();
      expect(parseArgs(['--stats']).stats).toBe(10);
      expect(parseArgs(['--stats', '5']).stats).toBe(5);
      expect(parseArgs(['--stats=0.5']).stats).toBe(0.5);
    });

    it('leaves the next flag alone', () => {
      expect(parseArgs(['--stats', '--list'])).toMatchObject({ stats: 10, list: true });
      expect(parseArgs(['--stats', '--input', 'X'])).toMatchObject({ stats: 10, input: { name: 'X' } });
    });

    it('takes only a number of seconds greater than 0', () => {
      expect(usageError(['--stats', '0'])).toBe("--stats takes a number of seconds greater than 0, got '0'");
      expect(usageError(['--stats', 'soon'])).toBe("--stats takes a number of seconds greater than 0, got 'soon'");
      expect(usageError(['--stats=-1'])).toBe("--stats takes a number of seconds greater than 0, got '-1'");
    });
  });

  describe('--help [PLUGIN], --list, --version, --man', () => {
    it('--help and -h alone, or with a plugin name', () => {
      expect(parseArgs(['--help']).help).toBe(true);
      expect(parseArgs(['-h']).help).toBe(true);
      expect(parseArgs(['--help', 'STDIN']).help).toBe('STDIN');
      expect(parseArgs(['-h', 'file']).help).toBe('file');
      expect(parseArgs(['--help=ZeroMQ']).help).toBe('ZeroMQ');
      expect(parseArgs(['--help', '--list'])).toMatchObject({ help: true, list: true });
    });

    it('--version, -v and -V', () => {
      for (const flag of ['--version', '-v', '-V']) expect(parseArgs([flag]).version, flag).toBe(true);
    });

    it('--list and the hidden --man', () => {
      expect(parseArgs(['--list']).list).toBe(true);
      expect(parseArgs(['--man']).man).toBe(true);
      expect(parseArgs(['--list=false']).list).toBe(false);
    });

    it('a switch takes no value', () => {
      expect(usageError(['--list=yes'])).toBe('--list takes no value');
      expect(usageError(['--version=1'])).toBe('--version takes no value');
      expect(usageError(['-v=1'])).toBe('--version takes no value');
    });
  });

  describe("Perl's process flags", () => {
    it('--daemonize, --pid_file, --user and --io_priority (a class in any case)', () => {
      expect(parseArgs(['--daemonize', '--pid_file', '/run/mp.pid', '--user', 'logs', '--io-priority', 'IDLE'])).toMatchObject({
        daemonize: true,
        pidFile: '/run/mp.pid',
        user: 'logs',
        ioPriority: 'idle',
      });
      expect(parseArgs(['--io_priority=be']).ioPriority).toBe('be');
    });

    it('--io_priority takes none, be, rt or idle only; --daemonize takes no value', () => {
      expect(usageError(['--io_priority', 'fast'])).toBe("--io_priority takes none, be, rt, idle, got 'fast'");
      expect(usageError(['--io_priority', 'rtt'])).toBe("--io_priority takes none, be, rt, idle, got 'rtt' (did you mean 'rt'?)");
      expect(usageError(['--io_priority'])).toBe('--io_priority needs a value (CLASS)');
      expect(usageError(['--daemonize=yes'])).toBe('--daemonize takes no value');
    });

    it('--error_encoder and its options, as a config file gives them too', () => {
      expect(parseArgs(['--error_encoder', 'Pickle', '--error-encoder-options', '{}']).errorEncoder).toEqual({ name: 'Pickle', options: {} });
      const file = configFile('daemon.json5', "{daemonize: true, pid_file: 'mp.pid', io_priority: 'Idle', error_encoder: 'Null', error_encoder_options: {}}");
      expect(parseArgs(['--configfile', file])).toMatchObject({ daemonize: true, pidFile: 'mp.pid', ioPriority: 'idle', errorEncoder: { name: 'Null', options: {} } });
      expect(usageError(['--configfile', configFile('bad-daemon.json5', "{daemonize: 'yes'}")])).toMatch(/: daemonize: expected true or false, got the string "yes"$/);
      expect(usageError(['--configfile', configFile('bad-class.json5', "{io_priority: 'fast'}")])).toMatch(/: io_priority takes none, be, rt, idle, got 'fast'$/);
    });
  });

  describe('usage errors', () => {
    it('an unknown flag, with the closest known one', () => {
      expect(usageError(['--inputt', 'STDIN'])).toBe('unknown flag --inputt (did you mean --input?)');
      expect(usageError(['--inptu=STDIN'])).toBe('unknown flag --inptu (did you mean --input?)');
      expect(usageError(['--input-optoins', '{}'])).toBe('unknown flag --input-optoins (did you mean --input_options?)');
      expect(usageError(['--Input', 'STDIN'])).toBe('unknown flag --Input (did you mean --input?)');
    });

    it('an unknown flag with nothing close', () => {
      expect(usageError(['--frobnicate'])).toBe('unknown flag --frobnicate (see --help)');
      expect(usageError(['-x'])).toBe('unknown flag -x (see --help)');
      expect(usageError(['--no-list'])).toBe('unknown flag --no-list (see --help)');
    });

    it('the internal --man only in that spelling, and never suggested', () => {
      expect(usageError(['--MAN'])).toBe('unknown flag --MAN (see --help)');
      expect(usageError(['--mann'])).not.toContain('--man?');
    });

    it('a word that is not a flag', () => {
      expect(usageError(['STDIN'])).toBe("unexpected argument 'STDIN': every setting is a flag such as --input NAME (see --help)");
      expect(usageError(['--', '--input'])).toMatch(/^unexpected argument '--input'/);
    });

    it('reports the first problem on the line', () => {
      expect(usageError(['--frobnicate', 'STDIN'])).toMatch(/^unknown flag --frobnicate/);
      expect(usageError(['STDIN', '--frobnicate'])).toMatch(/^unexpected argument 'STDIN'/);
      expect(usageError(['--input', 'A', 'B', '--no-list'])).toMatch(/^unexpected argument 'B'/);
    });

    it('a missing value, at the end, before the next flag, or empty', () => {
      expect(usageError(['--output'])).toBe('--output needs a value (NAME)');
      expect(usageError(['--input', '--output', 'STDOUT'])).toBe('--input needs a value (NAME)');
      expect(usageError(['--input='])).toBe('--input needs a value (NAME)');
      expect(usageError(['--filter_options'])).toBe('--filter_options needs a value (OPTS)');
      expect(usageError(['--configfile'])).toBe('--configfile needs a value (FILE)');
    });
  });

  describe('yargs stays quiet', () => {
    afterEach(() => vi.restoreAllMocks());

    it('never prints nor exits, whatever the command line', () => {
      const printed = [vi.spyOn(console, 'log'), vi.spyOn(console, 'error'), vi.spyOn(console, 'warn'), vi.spyOn(process.stdout, 'write'), vi.spyOn(process.stderr, 'write')];
      const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
      const lines = [[], ['--help'], ['-h'], ['--version'], ['-v'], ['--list'], ['completion'], ['--frobnicate'], ['STDIN'], ['--input'], ['--get-yargs-completions', 'message-passing', '--in'], ['--stats', 'x']];
      for (const argv of lines) {
        try {
          parseArgs(argv);
        } catch (error) {
          expect(error, JSON.stringify(argv)).toBeInstanceOf(UsageError);
        }
      }
      for (const spy of printed) expect(spy).not.toHaveBeenCalled();
      expect(exit).not.toHaveBeenCalled();
    });
  });

  describe('the completion subcommand and protocol', () => {
    it('completion [bash|zsh]', () => {
      expect(parseArgs(['completion']).completion).toBe('bash');
      expect(parseArgs(['completion', 'zsh']).completion).toBe('zsh');
      expect(usageError(['completion', 'tcsh'])).toBe("completion: unknown shell 'tcsh' (choose bash or zsh)");
      expect(usageError(['completion', 'bash', 'zsh'])).toBe("unexpected argument 'zsh' after completion bash");
    });

    it('--get-yargs-completions WORD... hands the words on, even ones that would be errors', () => {
      const settings = parseArgs(['--get-yargs-completions', 'message-passing', '--inptu', '']);
      expect(settings.completing).toEqual(['message-passing', '--inptu', '']);
      expect(['bash', 'zsh']).toContain(settings.completion);
    });
  });

  describe('--configfile', () => {
    const pipeline = configFile(
      'pipeline.json5',
      `// JSON5
{
  input: 'File',
  input_options: { filename: 'in.log' },
  filter: ['./a.mjs', './b.mjs'],
  filter_options: [{ a: 1 }, { b: 2 }],
  'output-options': '{path: "x"}',
  encoder: 'Null',
  stats: 30,
}`,
    );

    it('reads the same keys as the flags: lists of filters, kebab-case keys, options as objects or JSON5 text', () => {
      expect(parseArgs(['--configfile', pipeline])).toMatchObject({
        input: { name: 'File', options: { filename: 'in.log' } },
        filters: [
          { name: './a.mjs', options: { a: 1 } },
          { name: './b.mjs', options: { b: 2 } },
        ],
        output: { name: 'STDOUT', options: { path: 'x' } },
        encoder: { name: 'Null', options: {} },
        stats: 30,
      });
      expect(parseArgs([`--configfile=${configFile('one.json5', "{filter: './a.mjs'}")}`]).filters).toEqual([{ name: './a.mjs', options: {} }]);
    });

    it('lets flags override it; a plugin named on the command line drops the options the file gave it', () => {
      const settings = parseArgs(['--configfile', pipeline, '--encoder', 'JSON', '--filter_options', '{a: 9}', '--input', 'STDIN', '--stats', '2']);
      expect(settings.encoder.name).toBe('JSON');
      expect(settings.filters).toEqual([
        { name: './a.mjs', options: { a: 9 } },
        { name: './b.mjs', options: {} },
      ]);
      expect(settings.input).toEqual({ name: 'STDIN', options: {} });
      expect(settings.stats).toBe(2);
      expect(parseArgs(['--configfile', pipeline, '--filter', 'Null']).filters).toEqual([{ name: 'Null', options: {} }]);
    });

    it('names what is wrong with the file', () => {
      expect(usageError(['--configfile', join(dir, 'nowhere.json5')])).toMatch(/: cannot read it \(ENOENT\)$/);
      expect(usageError(['--configfile', configFile('typo.json5', '{inptu: "STDIN"}')])).toMatch(/: unknown key 'inptu' \(did you mean 'input'\?\)$/);
      expect(usageError(['--configfile', configFile('list.json5', '["STDIN"]')])).toMatch(/: expected an object with keys such as input, output, filter$/);
      expect(usageError(['--configfile', configFile('broken.json5', '{\n input: \n')])).toMatch(/: not valid JSON5 \(.*\)$/);
      expect(usageError(['--configfile', configFile('nested.json5', '{configfile: "x"}')])).toMatch(/: unknown key 'configfile'/);
      expect(usageError(['--configfile', configFile('stats.json5', '{stats: "soon"}')])).toMatch(/: stats: expected a number of seconds, got the string "soon"$/);
    });
  });
});

describe('completion', () => {
  const words = (line: string) => ['message-passing', ...line.split(' ')];
  /** The registry's names for a role (any role: undefined) that start with `typed` in any case, each once. */
  const named = (role: RegistryEntry['role'] | undefined, typed: string) => [
    ...new Set(registry.filter((e) => (role === undefined || e.role === role) && e.name.toLowerCase().startsWith(typed.toLowerCase())).map((e) => e.name)),
  ];

  it('offers plugin names after a flag that names one, matched in any case', async () => {
    for (const typed of ['st', 'std', 'STDI', 'stdin']) {
      const answers = await complete(words(`--input ${typed}`));
      expect(answers, typed).toContain('STDIN');
      expect(answers, typed).toEqual(named('input', typed));
    }
    expect(await complete(words('--output '))).toEqual(named('output', ''));
    expect(await complete(words('--error st'))).toEqual(named('output', 'st'));
    expect(await complete(words('--decoder j'))).toEqual(named('codec', 'j'));
    expect(await complete(words('--filter d'))).toEqual(named('filter', 'd'));
    expect(await complete(words('--input z'))).toContain('ZeroMQ');
  });

  it('offers an alias when it matches and its name does not', async () => {
    expect(await complete(words('--encoder-options {} --encoder ra'))).toEqual(['raw']);
    expect(await complete(words('--input zm'))).toEqual(['zmq']);
  });

  it('offers every plugin after --help and -h', async () => {
    expect(await complete(words('--help st'))).toEqual(named(undefined, 'st'));
    expect(await complete(words('-h fi'))).toEqual(expect.arrayContaining(['File', 'FileTail']));
  });

  it('completes --flag=value as one word (zsh, or the protocol by hand) and as bash splits it at =', async () => {
    expect(await complete(words('--input=std'))).toEqual(['--input=STDIN']);
    expect(await complete(words('--input-options={} --output=nu'))).toEqual(['--output=Null']);
    expect(await complete(words('--input = std'))).toEqual(['STDIN']);
    expect(await complete(words('--decoder ='))).toEqual(named('codec', ''));
    expect(await complete(words('--stats=1'))).toEqual([]);
  });

  it('offers nothing for options, files and unknown words, so the shell offers files', async () => {
    expect(await complete(words('--input_options '))).toEqual([]);
    expect(await complete(words('--configfile pi'))).toEqual([]);
    expect(await complete(words('--filter ./'))).toEqual([]);
    expect(await complete(words('--input STDIN stray'))).toEqual([]);
  });

  it("offers flags in Perl's spelling, not the hidden ones, and not again those that do not repeat", async () => {
    const visible = flags.filter((f) => !f.hidden).map((f) => `--${f.name}`);
    expect(await complete(words(''))).toEqual(visible);
    expect(await complete(words('-'))).toEqual(visible);
    expect(await complete(words('--inp'))).toEqual(['--input', '--input_options']);
    expect(await complete(words('--input-o'))).toEqual(['--input_options']);
    expect(await complete(words('--filter Null --input-options {} --i'))).toEqual(['--input', '--io_priority']);
    expect(await complete(words('--filter Null --fi'))).toEqual(['--filter', '--filter_options']);
    expect(await complete(words('--stats --l'))).toEqual(['--list']);
    expect(await complete(words('--ma'))).toEqual([]);
  });

  it('offers the classes of --io_priority, in any case, and after = too', async () => {
    expect(await complete(words('--io_priority '))).toEqual(['none', 'be', 'rt', 'idle']);
    expect(await complete(words('--io_priority I'))).toEqual(['idle']);
    expect(await complete(words('--io-priority=b'))).toEqual(['--io-priority=be']);
    expect(await complete(words('--io_priority = r'))).toEqual(['rt']);
    expect(await complete(words('--pid_file '))).toEqual([]);
  });

  it('offers the completion subcommand and its shells', async () => {
    expect(await complete(words('comp'))).toEqual(['completion']);
    expect(await complete(words('completion '))).toEqual(['bash', 'zsh']);
    expect(await complete(words('completion z'))).toEqual(['zsh']);
  });

  it('takes the words with or without the program name first', async () => {
    expect(await complete(['--input', 'st'])).toEqual(['STDIN']);
    expect(await complete(['--input=st'])).toEqual(['--input=STDIN']);
    expect(await complete([])).toEqual(flags.filter((f) => !f.hidden).map((f) => `--${f.name}`));
  });

  it("stops at zsh's cursor (COMP_CWORD) when words after it are passed", async () => {
    vi.stubEnv('COMP_CWORD', '2');
    try {
      expect(await complete(words('--input st --output STDOUT'))).toEqual(['STDIN']);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('gives zsh a description with each flag, and a : in a name escaped', () => {
    expect(candidates([], '--inp', true)).toEqual(['--input:Where messages come from.', "--input_options:The input's options, a JSON5 object."]);
    expect(candidates(['--input'], 'stdin', true)).toEqual(['STDIN']);
    const colon = registry.find((e) => [e.name, ...(e.aliases ?? [])].some((n) => n.includes(':')));
    if (colon) {
      const name = [colon.name, ...(colon.aliases ?? [])].find((n) => n.includes(':'))!;
      expect(candidates(['--help'], name, true)).toContain(name.replace(/:/g, '\\:'));
    }
  });

  describe("yargs's scripts", () => {
    it('bash: calls message-passing from PATH with the words up to the cursor, and filters nothing itself', () => {
      const shell = process.env.SHELL;
      const script = completionScript('bash');
      expect(process.env.SHELL).toBe(shell);
      expect(script).toContain('complete -o bashdefault -o default -F _message-passing_yargs_completions message-passing\n');
      expect(script).toContain('message-passing --get-yargs-completions "${args[@]}"');
      expect(script).toContain('args=("${COMP_WORDS[@]:0:COMP_CWORD+1}")');
      expect(script).not.toContain('"${cur_word}" |');
      expect(script).toContain('message-passing completion bash >> ~/.bashrc');
    });

    it('zsh: the zsh script whatever $SHELL says', () => {
      vi.stubEnv('SHELL', '/bin/bash');
      try {
        const script = completionScript('zsh');
        expect(script).toMatch(/^#compdef message-passing\n/);
        expect(script).toContain('compdef _message-passing_yargs_completions message-passing');
        expect(script).toContain('message-passing --get-yargs-completions "${words[@]}"');
        expect(script).toContain("_describe 'values' reply -M 'm:{a-zA-Z-}={A-Za-z_}'");
        expect(process.env.SHELL).toBe('/bin/bash');
      } finally {
        vi.unstubAllEnvs();
      }
    });
  });
});
