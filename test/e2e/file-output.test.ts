import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lines, run, sleep, start, tempDir, until } from './helpers.js';

const dir = tempDir();
let caseCount = 0;
/** A fresh folder per test. */
const folder = () => {
  const path = join(dir, `case-${++caseCount}`);
  mkdirSync(path, { recursive: true });
  return path;
};
const numbered = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `{"n":${from + i}}\n`).join('');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const toFile = (options: Record<string, unknown>) => ['--output', 'File', '--output_options', JSON.stringify(options)];

describe('File output', () => {
  it('appends by default, keeping what the file held', async () => {
    const out = join(folder(), 'out.log');
    writeFileSync(out, '{"old":true}\n');
    const { code, stderr } = await run(toFile({ filename: out }), { input: '{"a":1}\n{"a":2}\n' });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(read(out)).toBe('{"old":true}\n{"a":1}\n{"a":2}\n');
  });

  it('append: false empties the file first', async () => {
    const out = join(folder(), 'out.log');
    writeFileSync(out, '{"old":true}\n');
    const { code } = await run(toFile({ filename: out, append: false }), { input: '{"a":1}\n' });
    expect(code).toBe(0);
    expect(read(out)).toBe('{"a":1}\n');
  });

  it('passes raw lines through untouched with the Null codecs', async () => {
    const out = join(folder(), 'out.log');
    const { code } = await run(['--decoder', 'Null', '--encoder', 'Null', ...toFile({ filename: out })], {
      input: 'plain text\r\n\nnot json {\nlast',
    });
    expect(code).toBe(0);
    expect(read(out)).toBe('plain text\nnot json {\nlast\n');
  });

  it('mkdir: true creates missing parent folders', async () => {
    const out = join(folder(), 'a', 'b', 'out.log');
    const { code } = await run(toFile({ filename: out, mkdir: true }), { input: '{"a":1}\n' });
    expect(code).toBe(0);
    expect(read(out)).toBe('{"a":1}\n');
  });

  it('a path that cannot be written is exit 1 with one line, before anything is read', async () => {
    const base = folder();
    const out = join(base, 'missing', 'out.log');
    const { code, stderr } = await run(toFile({ filename: out }), { input: '{"a":1}\n' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(out);
    expect(stderr).toMatch(/does not exist.*mkdir: true/);
    writeFileSync(join(base, 'plain-file'), '');
    const notAFolder = await run(toFile({ filename: join(base, 'plain-file', 'out.log') }), { input: '{"a":1}\n' });
    expect(notAFolder.code).toBe(1);
    expect(notAFolder.stderr).toMatch(/not a folder/);
  });

  it('an unknown option or a broken placeholder is exit 2', async () => {
    const unknown = await run(toFile({ filename: 'x.log', apend: false }));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option 'apend'.*append/);
    const broken = await run(toFile({ filename: 'logs/%{name.log' }));
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/closing '}'/);
  });

  it('fills %{field} from each message; a message without the field, or whose value is not a plain name, goes to the error output', async () => {
    const base = folder();
    const template = join(base, 'logs', '%{name}.log');
    const to = (file: string) => ({ file });
    const refused = (what: string) => ({ reason: `field 'name' ${what} for filename ${template}` });
    // Each message (n added in order) and where it goes: a file in logs/, or the error output with that reason.
    const table: Array<[Record<string, unknown>, { file: string } | { reason: string }]> = [
      [{ name: 'web' }, to('web.log')],
      [{ name: 'db' }, to('db.log')],
      [{}, refused('missing')],
      [{ name: 'web' }, to('web.log')],
      [{ name: '../escape' }, refused('"../escape" is not usable in a file name')],
      [{ name: 7 }, to('7.log')],
      [{ name: '' }, refused('"" is not usable in a file name')],
      [{ name: '.' }, refused('"." is not usable in a file name')],
      [{ name: '..' }, refused('".." is not usable in a file name')],
      [{ name: { host: 'web' } }, refused('not a string or a number')],
      [{ name: ['web'] }, refused('not a string or a number')],
      [{ name: null }, refused('missing')],
      // A boolean is a plain name.
      [{ name: true }, to('true.log')],
    ];
    const frames = table.map(([fields], i) => JSON.stringify({ ...fields, n: i + 1 }));
    const { code, stderr } = await run(['--stats', ...toFile({ filename: template, mkdir: true })], { input: frames.map((f) => f + '\n').join('') });
    expect(code).toBe(0);
    const files = new Map<string, string>();
    const errors: unknown[] = [];
    table.forEach(([, goes], i) => {
      if ('file' in goes) files.set(goes.file, (files.get(goes.file) ?? '') + frames[i] + '\n');
      else errors.push({ error: 'output', reason: goes.reason, source: `stdin:${i + 1}`, stage: 'output File', frame: frames[i] });
    });
    // Nothing beside logs/, nothing in it but the expected files.
    expect(readdirSync(base)).toEqual(['logs']);
    expect(readdirSync(join(base, 'logs')).sort()).toEqual([...files.keys()].sort());
    for (const [file, text] of files) expect(read(join(base, 'logs', file))).toBe(text);
    const printed = stderr.split('\n').filter((l) => l !== '');
    expect(lines(printed.slice(0, -1).join('\n'))).toEqual(errors);
    expect(printed.at(-1)).toMatch(
      new RegExp(`^message-passing: stats in=${table.length} created=0 out=${table.length - errors.length} dropped=0 errors=${errors.length} `),
    );
  });

  it('keeps at most max_open_files open and loses nothing when it closes one', async () => {
    const base = folder();
    const names = ['a', 'b', 'c', 'd', 'e'];
    const input = range(1, 500)
      .map((n) => JSON.stringify({ name: names[n % names.length], n }) + '\n')
      .join('');
    const { code } = await run(toFile({ filename: join(base, '%{name}.log'), max_open_files: 2 }), { input });
    expect(code).toBe(0);
    for (const [i, name] of names.entries()) {
      const got = (lines(read(join(base, `${name}.log`))) as { n: number }[]).map((m) => m.n);
      expect(got).toEqual(range(1, 500).filter((n) => n % names.length === i));
    }
  });

  it('reopens the file on SIGHUP, so mv + kill -HUP loses no line', async () => {
    const out = join(folder(), 'out.log');
    const tool = start(toFile({ filename: out }));
    tool.child.stdin!.write(numbered(1, 100));
    await until(() => read(out).endsWith('{"n":100}\n'), 'the first 100 lines');
    renameSync(out, `${out}.1`);
    tool.child.kill('SIGHUP');
    await until(() => existsSync(out), 'the reopened file');
    tool.child.stdin!.write(numbered(101, 150));
    tool.child.stdin!.end(numbered(151, 200));
    const { code, stderr } = await tool.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(read(`${out}.1`)).toBe(numbered(1, 100));
    expect(read(out)).toBe(numbered(101, 200));
  });
});
