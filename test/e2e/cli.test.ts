// The command line as a user types it: defaults, spellings, JSON5 options, config files.
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { flags } from '../../src/cli/flags.js';
import { BIN, ROOT, lines, run, tempDir } from './helpers.js';

const dir = tempDir();
writeFileSync(join(dir, 'tag.mjs'), 'export default (message, options) => ({ ...message, ...options });\n');
writeFileSync(join(dir, 'same.mjs'), 'export default (message) => message;\n');
writeFileSync(join(dir, 'mark.cjs'), 'module.exports = (message, options) => ({ ...message, marks: [...(message.marks ?? []), options.mark] });\n');

/** Runs in the temp folder, where the filter modules above live. */
const runHere = (args: string[], input: string) => run(args, { input, cwd: dir });

describe.concurrent('defaults: NDJSON on stdin to NDJSON on stdout', () => {
  it('copies each JSON line to stdout', async () => {
    const { code, stdout, stderr } = await run([], { input: '{"a":1}\n{"b":[1,2,{"c":null}]}\n"text"\n42\n' });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe('{"a":1}\n{"b":[1,2,{"c":null}]}\n"text"\n42\n');
  });

  it('removes CR before LF, skips empty lines and keeps a last line without LF', async () => {
    const { code, stdout, stderr } = await run([], { input: '{"a":1}\r\n\n\r\n{"a":2}\n\n{"a":3}' });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe('{"a":1}\n{"a":2}\n{"a":3}\n');
  });

  it('keeps key order as JavaScript objects do (integer-like keys first)', async () => {
    const { stdout } = await run([], { input: '{"zeta":1,"alpha":2,"mid":{"b":1,"a":2},"10":3,"2":4}\n' });
    expect(stdout).toBe('{"2":4,"10":3,"zeta":1,"alpha":2,"mid":{"b":1,"a":2}}\n');
  });

  it('writes nothing and exits 0 on empty input', async () => {
    expect(await run([], { input: '' })).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('--decoder Null --encoder Null passes text through unchanged', async () => {
    const input = 'not json at all\n  {"spaced" :  1}  \r\nünïcödé ✓\n\n{"a":1}';
    const { code, stdout, stderr } = await run(['--decoder', 'Null', '--encoder', 'Null'], { input });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe('not json at all\n  {"spaced" :  1}  \nünïcödé ✓\n{"a":1}\n');
  });

  it('--decoder Null --encoder Null with a filter in between still writes the text unchanged', async () => {
    const { stdout } = await run(['--decoder', 'Null', '--encoder', 'Null', '--filter', 'Null'], { input: 'one\r\ntwo  \n' });
    expect(stdout).toBe('one\ntwo  \n');
  });

  it('the Null decoder with the JSON encoder makes JSON strings', async () => {
    const { stdout } = await run(['--decoder', 'Null'], { input: 'plain text\n{"a":1}\nsay "hi"\n' });
    expect(lines(stdout)).toEqual(['plain text', '{"a":1}', 'say "hi"']);
  });
});

describe.concurrent('flag and plugin name spellings', () => {
  const overLong = '{"this line is long":true}\n{"a":1}\n';
  const expectCut = ({ code, stdout, stderr }: { code: number | null; stdout: string; stderr: string }) => {
    expect(code).toBe(0);
    expect(stdout).toBe('{"a":1}\n');
    expect(lines(stderr)).toMatchObject([{ error: 'over-long', source: 'stdin:1' }]);
  };

  it('takes Perl spelling (--input_options)', async () => {
    expectCut(await run(['--input', 'STDIN', '--input_options', '{"max_line_length": 10}'], { input: overLong }));
  });

  it('takes kebab case (--input-options) and --flag=value', async () => {
    expectCut(await run(['--input=STDIN', '--input-options={"max_line_length": 10}'], { input: overLong }));
  });

  it('takes JSON5 options: unquoted keys, single quotes, comments, trailing commas', async () => {
    expectCut(await run(['--input_options', "{max_line_length: 10, /* bytes */}"], { input: overLong }));
    const { stdout } = await runHere(['--filter', './tag.mjs', '--filter_options', "{host: 'web-1', tags: ['a',],}"], '{"m":1}\n');
    expect(lines(stdout)).toEqual([{ m: 1, host: 'web-1', tags: ['a'] }]);
  });

  it('matches plugin names in any case', async () => {
    const { code, stdout, stderr } = await run(['--input', 'stdin', '--output', 'StdOut', '--decoder', 'json', '--encoder', 'Json', '--error', 'stderr', '--filter', 'NULL'], { input: '{"a":1}\n' });
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: '{"a":1}\n', stderr: '' });
  });

  it('--error File keeps the error records in a file; stdout and stderr stay clean', async () => {
    const { code, stdout, stderr } = await runHere(['--error', 'File', '--error_options', '{filename: "errors.ndjson"}'], '{"ok":1}\nnot json\n');
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: '{"ok":1}\n', stderr: '' });
    expect(lines(readFileSync(join(dir, 'errors.ndjson'), 'utf8'))).toMatchObject([{ error: 'decode', source: 'stdin:2', frame: 'not json' }]);
  });

  it("accepts Perl's leading + on plugin names, module paths and the raw alias", async () => {
    const { code, stdout, stderr } = await runHere(
      ['--input', '+STDIN', '--output', '+STDOUT', '--decoder', '+raw', '--encoder', 'RAW', '--filter', '+Null', '--filter', '+./same.mjs'],
      'line\n',
    );
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: 'line\n', stderr: '' });
  });
});

describe.concurrent('repeated --filter', () => {
  it('runs filters in the order given; the n-th --filter_options belongs to the n-th --filter', async () => {
    const { code, stdout, stderr } = await runHere(
      ['--filter', './mark.cjs', '--filter_options', '{mark: 1}', '--filter', 'Null', '--filter', './mark.cjs', '--filter_options', '{}', '--filter', './mark.cjs', '--filter_options', '{mark: 3}'],
      '{"n":1}\n{"n":2}\n',
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // Null takes the second --filter_options ({}), so the last mark.cjs gets none.
    expect(lines(stdout)).toEqual([
      { n: 1, marks: [1, 3, null] },
      { n: 2, marks: [1, 3, null] },
    ]);
  });
});

describe.concurrent('--configfile', () => {
  const config = join(dir, 'pipeline.json5');
  writeFileSync(
    config,
    `// A pipeline, in JSON5.
{
  input: 'STDIN',
  input_options: { max_line_length: 100 },
  filter: ['./tag.mjs', './mark.cjs'],
  filter_options: [{ host: 'web-1' }, { mark: 'm' }],
  'decoder': 'JSON',
  output: 'STDOUT',
}
`,
  );

  it('reads input, output and a list of filters with their options', async () => {
    const { code, stdout, stderr } = await runHere(['--configfile', config], '{"n":1}\n');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1, host: 'web-1', marks: ['m'] }]);
  });

  it('lets flags on the command line override it', async () => {
    const { stdout } = await runHere(['--configfile', config, '--encoder', 'Null', '--filter_options', '{host: "db-2"}', '--filter_options', '{mark: "x"}'], '{"n":1}\n');
    expect(lines(stdout)).toEqual([{ n: 1, host: 'db-2', marks: ['x'] }]);
  });

  it('drops the options it gave for a plugin that the command line replaces', async () => {
    const { code, stdout, stderr } = await runHere(['--configfile', config, '--filter', 'Null'], '{"n":1}\n');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }]);
    // The file's max_line_length of 100 does not apply to the STDIN named on the command line.
    const long = JSON.stringify({ n: 2, pad: 'x'.repeat(120) });
    const replacedInput = await runHere(['--configfile', config, '--input', 'STDIN'], `${long}\n`);
    expect(replacedInput.stderr).toBe('');
    expect(lines(replacedInput.stdout)).toEqual([{ n: 2, pad: 'x'.repeat(120), host: 'web-1', marks: ['m'] }]);
  });

  it('takes a single filter as a string, kebab-case keys and options as a JSON5 string', async () => {
    const single = join(dir, 'single.json5');
    writeFileSync(single, `{ filter: './tag.mjs', 'filter-options': "{host: 'solo'}", encoder: 'json' }`);
    const { code, stdout, stderr } = await runHere([`--configfile=${single}`], '{"n":1}\n');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1, host: 'solo' }]);
  });
});

describe.concurrent('usage errors from the command line: exit 2, one line, nothing started', () => {
  it.each([
    [['--input-optoins', '{}'], 'unknown flag --input-optoins (did you mean --input_options?)'],
    [['--Output=STDOUT'], 'unknown flag --Output (did you mean --output?)'],
    [['--list=yes'], '--list takes no value'],
    [['--stats', 'soon'], "--stats takes a number of seconds greater than 0, got 'soon'"],
    [['--input='], '--input needs a value (NAME)'],
    [['--', 'STDIN'], "unexpected argument 'STDIN': every setting is a flag such as --input NAME (see --help)"],
    [['completion', 'bash', 'zsh'], "unexpected argument 'zsh' after completion bash"],
  ])('%j', async (args, message) => {
    const { code, stdout, stderr } = await run(args, { input: '{"would":"be copied"}\n' });
    expect(stdout).toBe('');
    expect(stderr).toBe(`message-passing: ${message}\n`);
    expect(code).toBe(2);
  });

  it('-h PLUGIN is --help PLUGIN', async () => {
    const short = await run(['-h', 'stdin']);
    expect(short.code).toBe(0);
    expect(short.stdout).toBe((await run(['--help', 'STDIN'])).stdout);
  });
});

describe.concurrent('yargs in the build', () => {
  const loads = async (args: string[]) => {
    const { code, stderr } = await run(args, { input: '{}\n', env: { NODE_DEBUG: 'module' } });
    expect(code).toBe(0);
    return /load "[^"]*message-passing-yargs\.cjs"/.test(stderr);
  };

  it('is loaded only when there is a command line to parse', async () => {
    expect(await loads([])).toBe(false);
    expect(await loads(['--input', 'STDIN'])).toBe(true);
  });

  it('runs with the V8 code cache made at build time', () => {
    const loader = join(ROOT, 'dist', 'message-passing-yargs.cjs');
    const script = `const y = require(${JSON.stringify(loader)}); console.log(y.codeCache, typeof y.default)`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('accepted function\n');
  });

  it('needs nothing from node_modules: the bundled yargs requires only Node built-ins', () => {
    const code = readFileSync(join(ROOT, 'dist', 'message-passing-yargs-code.cjs'), 'utf8');
    const required = [...code.matchAll(/\brequire\(\s*["'`]([^"'`]+)["'`]\s*\)/g)].map((m) => m[1]!);
    expect(required.length).toBeGreaterThan(0);
    expect(required.filter((id) => !isBuiltin(id))).toEqual([]);
  });
});

describe.concurrent('shell completion', () => {
  // `message-passing` on PATH, as the completion scripts call it.
  const binDir = join(dir, '.bin');
  mkdirSync(binDir);
  writeFileSync(join(binDir, 'message-passing'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  chmodSync(join(binDir, 'message-passing'), 0o755);
  const env: Record<string, string | undefined> = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, SHELL: '/bin/bash' };
  delete env.ZSH_NAME;
  delete env.COMP_CWORD;
  const exec = promisify(execFile);

  it("answers yargs's protocol, --get-yargs-completions WORD..., one answer a line", async () => {
    const ask = async (...words: string[]) => (await exec('message-passing', ['--get-yargs-completions', ...words], { env, encoding: 'utf8' })).stdout;
    const cases: Array<[string[], unknown]> = [
      [['message-passing', '--input', 'stdi'], 'STDIN\n'],
      [['--input', 'stdi'], 'STDIN\n'],
      [['--input=stdi'], '--input=STDIN\n'],
      [['message-passing', '--help', 'std'], expect.stringMatching(/^(?=[^]*^STDIN$)(?=[^]*^STDOUT$)(?=[^]*^STDERR$)/m)],
      [['message-passing', '--decoder', 'xyz'], ''],
      [['message-passing', '--inptu', '--inp'], '--input\n--input_options\n'],
      [['message-passing', ''], flags.filter((f) => !f.hidden).map((f) => `--${f.name}\n`).join('')],
    ];
    const answers = await Promise.all(cases.map(([words]) => ask(...words)));
    cases.forEach(([words, expected], i) => expect(answers[i], words.join(' ')).toEqual(expected));
  });

  let bashScript: Promise<string> | undefined;
  /** COMPREPLY after the bash script's function runs on `words`, the cursor at word `cword` (the last by default). */
  async function bashComplete(words: string[], cword = words.length - 1): Promise<string[]> {
    // The script, as `eval "$(message-passing completion bash)"` would load it; made once.
    bashScript ??= exec('message-passing', ['completion', 'bash'], { env, encoding: 'utf8' }).then(({ stdout }) => {
      const file = join(dir, 'completion.bash');
      writeFileSync(file, stdout);
      return file;
    });
    const script = [
      `source '${await bashScript}'`,
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
      `COMP_CWORD=${cword}`,
      'COMP_LINE="${COMP_WORDS[*]}"',
      'COMP_POINT=${#COMP_LINE}',
      '_message-passing_yargs_completions',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join('\n');
    const { stdout } = await exec('bash', ['-c', script], { env, encoding: 'utf8', cwd: dir });
    return stdout.split('\n').filter((line) => line !== '');
  }

  it('completes in bash: plugin names in any case, --flag=value as bash splits it, flags, up to the cursor', async () => {
    const cases: Array<[string[], number | undefined, unknown]> = [
      [['message-passing', '--input', 'stdi'], undefined, ['STDIN']],
      [['message-passing', '--input', '=', 'stdi'], undefined, ['STDIN']],
      [['message-passing', '--decoder', '='], undefined, expect.arrayContaining(['JSON', 'Null'])],
      [['message-passing', '--help', 'filet'], undefined, ['FileTail']],
      [['message-passing', '--out'], undefined, ['--output', '--output_options']],
      [['message-passing', '--inp', '--output', 'STDOUT'], 1, ['--input', '--input_options']],
      [['message-passing', 'completion', ''], undefined, ['bash', 'zsh']],
      // Nothing to offer: bash's own file completion takes over (complete -o default).
      [['message-passing', '--configfile', 'pi'], undefined, []],
    ];
    const answers = await Promise.all(cases.map(([words, cword]) => bashComplete(words, cword)));
    cases.forEach(([words, , expected], i) => expect(answers[i], words.join(' ')).toEqual(expected));
  });

  const zsh = spawnSync('sh', ['-c', 'command -v zsh'], { encoding: 'utf8' }).status === 0;

  /**
   * The line after TAB in a real interactive zsh (run in a pseudo-terminal by
   * zsh/zpty) with compinit and the script loaded: a dumb terminal, so zsh
   * edits the line with backspaces, replayed here.
   */
  async function zshComplete(line: string): Promise<string> {
    const harness = [
      'zmodload zsh/zpty',
      "zpty z 'TERM=dumb zsh -f -i'",
      `zpty -w z 'PS1="READY> "; autoload -U compinit; compinit -u; eval "$(message-passing completion zsh)"; echo SETUP-DONE'`,
      "zpty -r z out '*SETUP-DONE*'",
      "zpty -r z out '*READY> '",
      `zpty -w -n z "$LINE"$'\\t'`,
      // Until zsh has written something after the line typed (the completion), then a moment more.
      'all=',
      'for i in {1..60}; do sleep 0.25; while zpty -r -t z out; do all+=$out; done; [[ -n ${all#*"$LINE"} ]] && break; done',
      'sleep 0.5',
      'while zpty -r -t z out; do all+=$out; done',
      'print -r -- "$all"',
      'zpty -d z',
    ].join('\n');
    const { stdout } = await exec('zsh', ['-f', '-c', harness], { env: { ...env, SHELL: '/bin/zsh', LINE: line }, encoding: 'utf8', timeout: 40_000 });
    const screen: string[] = [];
    for (const ch of stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')) {
      if (ch === '\b') screen.pop();
      else screen.push(ch === '\r' ? '\n' : ch);
    }
    return screen.join('').split('\n').filter((l) => l.includes('message-passing')).at(-1)!.replace(/^READY> /, '').trimEnd();
  }

  it.skipIf(!zsh)('completes in a real zsh: plugin names in any case, --flag=value, kebab case to Perl spelling', async () => {
    const [std, joined, kebab, several] = await Promise.all([
      zshComplete('message-passing --input stdi'),
      zshComplete('message-passing --input=stdi'),
      zshComplete('message-passing --input-o'),
      zshComplete('message-passing --help std'),
    ]);
    expect(std).toBe('message-passing --input STDIN');
    expect(joined).toBe('message-passing --input=STDIN');
    expect(kebab).toBe('message-passing --input_options');
    expect(several).toBe('message-passing --help STD');
  });
});

const perl = spawnSync('sh', ['-c', 'command -v message-pass'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!perl)("with Perl's message-pass", () => {
  it('reads what we write and we read what it writes, in both directions', () => {
    const input = '{"a":1,"text":"ünïcödé ✓"}\n{"list":[1,{"b":null}]}\n';
    const pipeline = `node ${BIN} | message-pass --input STDIN --output STDOUT | node ${BIN} --input stdin --output stdout`;
    const result = spawnSync('sh', ['-c', pipeline], { input, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(lines(result.stdout)).toEqual(lines(input));
  });
});
