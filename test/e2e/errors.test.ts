// Usage errors: exit 2, exactly one line on stderr with a hint, no stack, nothing on stdout, nothing started.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, tempDir } from './helpers.js';

const dir = tempDir();
writeFileSync(join(dir, 'broken.json5'), '{\n  input: "STDIN",\n  output:\n');
writeFileSync(join(dir, 'typo.json5'), '{ inptu: "STDIN" }');
writeFileSync(join(dir, 'list.json5'), '["STDIN"]');

const usageErrors: Array<[string, string[], RegExp]> = [
  ['unknown input, with a suggestion', ['--input', 'STDNI'], /unknown input 'STDNI' \(did you mean 'STDIN'\?\)/],
  ['unknown output, with a suggestion', ['--output', 'stdot'], /unknown output 'stdot' \(did you mean 'STDOUT'\?\)/],
  ['unknown decoder, with the choices', ['--decoder', 'xml'], /unknown decoder\/encoder 'xml' \(choose from JSON, Null, raw, Pickle; see --list\)/],
  ['options that are not JSON5', ['--input_options', '{max_line_length: '], /--input_options: not valid JSON5 \(.*\): \{max_line_length:/],
  ['an unknown option', ['--input_options', '{max_line_lenght: 5}'], /--input STDIN: unknown option 'max_line_lenght' \(did you mean 'max_line_length'\?\)/],
  ['an option of the wrong type', ['--input_options', '{max_line_length: "big"}'], /--input STDIN: option 'max_line_length' must be a size like "512B", "64KiB", .* or a number of bytes, got the string "big"/],
  ['an option out of range', ['--input_options', '{max_line_length: 0}'], /option 'max_line_length' must be at least 1B, got number 0/],
  ['options that are not an object', ['--input_options', '[1, 2]'], /--input_options: expected an object like '\{key: "value"\}', got a list/],
  ['options that are a string', ['--output_options', '"x"'], /--output_options: expected an object .*, got the string "x"/],
  ['options for a plugin that takes none', ['--output', 'Null', '--output_options', '{level: 1}'], /--output Null: unknown option 'level' \(it takes no options\)/],
  ['a missing required option', ['--input', 'File'], /--input File: option 'filename' is required/],
  ['an unknown flag, with a suggestion', ['--inputt', 'STDIN'], /unknown flag --inputt \(did you mean --input\?\)/],
  ['an unknown flag', ['--frobnicate'], /unknown flag --frobnicate \(see --help\)/],
  ['a stray argument', ['STDIN'], /unexpected argument 'STDIN'/],
  ['a missing value at the end', ['--output'], /--output needs a value \(NAME\)/],
  ['a missing value before the next flag', ['--input', '--output', 'STDOUT'], /--input needs a value \(NAME\)/],
  ['--filter_options without --filter', ['--filter_options', '{a: 1}'], /--filter_options given once but --filter not at all/],
  ['more --filter_options than --filter', ['--filter', 'Null', '--filter_options', '{}', '--filter_options', '{}'], /--filter_options given 2 times but --filter only once/],
  ['a bad --stats value', ['--stats', '0'], /--stats takes a number of seconds greater than 0/],
  ['a value on a flag that takes none', ['--list=yes'], /--list takes no value/],
  ['--help for an unknown plugin', ['--help', 'Stdn'], /no plugin named 'Stdn' \(did you mean 'STDIN'\?\)/],
  ['a config file that does not exist', ['--configfile', 'nowhere.json5'], /--configfile nowhere\.json5: cannot read it \(ENOENT\)/],
  ['a config file that is not JSON5 (spread over lines)', ['--configfile', join(dir, 'broken.json5')], /--configfile .*broken\.json5: not valid JSON5 \(.*\)$/m],
  ['a config file with an unknown key', ['--configfile', join(dir, 'typo.json5')], /unknown key 'inptu' \(did you mean 'input'\?\)/],
  ['a config file that is not an object', ['--configfile', join(dir, 'list.json5')], /expected an object with keys such as input, output, filter/],
  ['completion for an unknown shell', ['completion', 'tcsh'], /completion: unknown shell 'tcsh' \(choose bash or zsh\)/],
];

describe.concurrent('usage errors', () => {
  it.each(usageErrors)('%s: exit 2 and one line', async (_what, args, message) => {
    // Input waits on stdin: if anything started, the test would see output or hang.
    const { code, stdout, stderr } = await run(args, { input: '{"would":"be copied"}\n' });
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^message-passing: [^\n]+\n$/);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(code).toBe(2);
  });

  it('DEBUG=1 shows the stack as well', async () => {
    const { code, stderr } = await run(['--input', 'STDNI'], { env: { DEBUG: '1' } });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^UsageError: unknown input 'STDNI'/);
    expect(stderr).toMatch(/\n\s+at /);
    expect(stderr).toMatch(/\nmessage-passing: unknown input 'STDNI' \(did you mean 'STDIN'\?\)\n$/);
  });
});

describe.concurrent('runtime errors', () => {
  it('an unreadable input file: exit 1 and one line naming it', async () => {
    const missing = join(dir, 'no-such.log');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: missing })]);
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^message-passing: [^\n]*no-such\.log[^\n]*\n$/);
  });

  it('a filter whose constructor throws: exit 1, one line, no stack', async () => {
    writeFileSync(join(dir, 'bad-setup.mjs'), "export default class { constructor() { throw new Error('needs a key'); } filter(m) { return m; } }\n");
    const { code, stdout, stderr } = await run(['--filter', './bad-setup.mjs'], { cwd: dir, input: '{}\n' });
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^message-passing: filter \.\/bad-setup\.mjs: cannot start: needs a key\n$/);
  });
});
