import { appendFileSync, closeSync, copyFileSync, mkdirSync, openSync, renameSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePattern } from '../../src/io/files.js';
import { lines, run, sleep, start, tempDir, type Running } from './helpers.js';

const dir = tempDir();
let fileCount = 0;
/** A fresh path in the temp folder (each test gets its own files). */
const path = (name = 'app.log') => {
  const folder = join(dir, `case-${++fileCount}`);
  mkdirSync(folder, { recursive: true });
  return join(folder, name);
};
const numbered = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `{"n":${from + i}}\n`).join('');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** The `n` of every output line, sorted: duplicates show up as repeats. */
const seen = (stdout: string) => (lines(stdout) as { n: number }[]).map((m) => m.n).sort((a, b) => a - b);

const follow = (options: Record<string, unknown>) =>
  start(['--input', 'File', '--input_options', JSON.stringify({ follow: true, ...options })]);

async function stop(tool: Running) {
  tool.child.kill('SIGTERM');
  const finished = await tool.done;
  expect(finished.stderr).toBe('');
  expect(finished.code).toBe(0);
  return finished;
}

describe('file name patterns', () => {
  it('* and ? match in the last part only, other characters literally, hidden files only when asked', () => {
    const logs = new FilePattern('/var/log/app/*.log');
    expect(logs.isPattern).toBe(true);
    expect(logs.directory).toBe('/var/log/app');
    expect(['a.log', 'app-2026.log', '.log', 'a.txt'].filter((n) => logs.matches(n))).toEqual(['a.log', 'app-2026.log']);
    expect(logs.matches('.hidden.log')).toBe(false);
    expect(logs.matches('a.log.1')).toBe(false);
    const one = new FilePattern('/x/app?.log');
    expect(['app1.log', 'app.log', 'app12.log'].filter((n) => one.matches(n))).toEqual(['app1.log']);
    const literal = new FilePattern('/x/a+b[1](c).*');
    expect(literal.matches('a+b[1](c).log')).toBe(true);
    expect(literal.matches('aab1c.log')).toBe(false);
    expect(new FilePattern('/x/.*.log').matches('.hidden.log')).toBe(true);
    const plain = new FilePattern('/x/app.log');
    expect(plain.isPattern).toBe(false);
    expect(plain.path).toBe('/x/app.log');
  });
});

describe('File input without follow', () => {
  it('reads the file and ends: CRLF, empty lines and a last line without LF', async () => {
    const file = path();
    writeFileSync(file, '{"a":1}\n{"a":2}\r\n\n{"a":3}');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', `{filename: ${JSON.stringify(file)}}`]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  it('origin adds {file, line} to each object message, also with the JSON codecs that pass lines through', async () => {
    const file = path();
    writeFileSync(file, '{"a":1}\n\n{"a":2}\n"text"\n');
    const { code, stdout } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: file, origin: 'from' })]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ a: 1, from: { file, line: 1 } }, { a: 2, from: { file, line: 3 } }, 'text']);
  });

  it('reads every file a pattern matches, in name order', async () => {
    const a = path('a.log');
    const folder = join(a, '..');
    writeFileSync(a, '{"f":"a"}\n');
    writeFileSync(join(folder, 'b.log'), '{"f":"b"}\n');
    writeFileSync(join(folder, 'c.txt'), '{"f":"c"}\n');
    writeFileSync(join(folder, '.hidden.log'), '{"f":"hidden"}\n');
    const { code, stdout } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: join(folder, '*.lo?') })]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ f: 'a' }, { f: 'b' }]);
  });

  it('names the file and line of a bad frame in its error record', async () => {
    const file = path();
    writeFileSync(file, '{"a":1}\nnot json\n');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: file })]);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ a: 1 }]);
    expect(lines(stderr)).toMatchObject([{ error: 'decode', source: `file:${file}:2`, frame: 'not json' }]);
  });

  it('a missing file is exit 1 with one line saying which file and what to do', async () => {
    const file = join(dir, 'does-not-exist.log');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: file })]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(file);
    expect(stderr).toMatch(/no such file.*follow: true/);
  });

  it('a folder given as the file is exit 1 with one line', async () => {
    const { code, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: dir })]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/folder/);
  });

  it('an unknown option, a wildcard in a folder name or from: "end" without follow is exit 2', async () => {
    const unknown = await run(['--input', 'File', '--input_options', '{filename: "x.log", folow: true}']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option 'folow'.*follow/);
    const wildFolder = await run(['--input', 'File', '--input_options', '{filename: "/var/*/x.log"}']);
    expect(wildFolder.code).toBe(2);
    const fromEnd = await run(['--input', 'File', '--input_options', '{filename: "x.log", from: "end"}']);
    expect(fromEnd.code).toBe(2);
    expect(fromEnd.stderr).toMatch(/follow: true/);
  });
});

describe('File input with follow (tail -F)', () => {
  it('picks up appended lines, holding a partial line until its LF', async () => {
    const file = path();
    writeFileSync(file, '{"n":1}\n');
    const tool = follow({ filename: file });
    await tool.waitFor('stdout', '{"n":1}');
    appendFileSync(file, '{"n":2}\n{"n":');
    await tool.waitFor('stdout', '{"n":2}');
    await sleep(100);
    expect(tool.stdout).not.toContain('"n":3');
    appendFileSync(file, '3}\n');
    await tool.waitFor('stdout', '{"n":3}');
    const { stdout } = await stop(tool);
    expect(seen(stdout)).toEqual([1, 2, 3]);
  });

  it('origin names the file and line while following', async () => {
    const file = path();
    writeFileSync(file, '{"n":1}\n');
    const tool = follow({ filename: file, origin: 'origin' });
    await tool.waitFor('stdout', '"n":1');
    appendFileSync(file, '{"n":2}\n');
    await tool.waitFor('stdout', '"n":2');
    const { stdout } = await stop(tool);
    expect(lines(stdout)).toEqual([{ n: 1, origin: { file, line: 1 } }, { n: 2, origin: { file, line: 2 } }]);
  });

  it('FileTail is File with follow on', async () => {
    const file = path();
    writeFileSync(file, '{"n":1}\n');
    const tool = start(['--input', 'FileTail', '--input_options', JSON.stringify({ filename: file })]);
    await tool.waitFor('stdout', '{"n":1}');
    appendFileSync(file, '{"n":2}\n');
    await tool.waitFor('stdout', '{"n":2}');
    expect(seen((await stop(tool)).stdout)).toEqual([1, 2]);
  });

  it('loses no line when the file is renamed away during a steady stream', async () => {
    const file = path();
    writeFileSync(file, numbered(1, 10));
    const tool = follow({ filename: file });
    await tool.waitFor('stdout', '{"n":10}');
    let fd = openSync(file, 'a');
    for (let n = 11; n <= 600; n += 10) {
      writeSync(fd, numbered(n, n + 9));
      if (n === 291) {
        // logrotate: rename, create the new file, and the writer goes on in the old
        // one a moment until it reopens its log.
        renameSync(file, `${file}.1`);
        await sleep(20);
        closeSync(openSync(file, 'a'));
        await sleep(20);
        writeSync(fd, numbered(301, 310));
        n += 10;
        await sleep(20);
        closeSync(fd);
        fd = openSync(file, 'a');
      }
      await sleep(5);
    }
    closeSync(fd);
    await tool.waitFor('stdout', '{"n":600}');
    const { stdout } = await stop(tool);
    expect(seen(stdout)).toEqual(range(1, 600));
  });

  it('reads the rest of a renamed file before its successor, even when far behind', async () => {
    const file = path();
    const plain = (from: number, to: number) => range(from, to).join('\n') + '\n';
    writeFileSync(file, '0\n');
    // 7 MB takes a loaded machine a while: the process is not killed before the 15 s wait below is over.
    const tool = start(['--input', 'FileTail', '--input_options', JSON.stringify({ filename: file }), '--decoder', 'Null', '--encoder', 'Null'], { timeout: 40_000 });
    await tool.waitFor('stdout', '0\n');
    // About 7 MB at once: several rounds of reading for the follower.
    appendFileSync(file, plain(1, 1_000_000));
    renameSync(file, `${file}.1`);
    writeFileSync(file, plain(1_000_001, 1_000_010));
    await tool.waitFor('stdout', '\n1000010\n', 15_000);
    const { stdout } = await stop(tool);
    const order = stdout.trimEnd().split('\n').map(Number);
    const firstOutOfPlace = order.findIndex((n, i) => n !== i);
    expect(firstOutOfPlace).toBe(-1);
    expect(order).toHaveLength(1_000_011);
  });

  it('starts again from the beginning when the file is truncated (copytruncate)', async () => {
    const file = path();
    writeFileSync(file, numbered(1, 10));
    const tool = follow({ filename: file });
    await tool.waitFor('stdout', '{"n":10}');
    const fd = openSync(file, 'a');
    for (let n = 11; n <= 600; n += 10) {
      writeSync(fd, numbered(n, n + 9));
      if (n === 291) {
        // Lines not yet read when the file is cut are lost by any follower (they live
        // only in the copy): let it catch up, then copy and cut with no write between.
        await tool.waitFor('stdout', '{"n":300}');
        copyFileSync(file, `${file}.1`);
        truncateSync(file, 0);
      }
      await sleep(5);
    }
    closeSync(fd);
    await tool.waitFor('stdout', '{"n":600}');
    const { stdout } = await stop(tool);
    expect(seen(stdout)).toEqual(range(1, 600));
  });

  it('waits for a file that does not exist yet', async () => {
    const file = path();
    const tool = follow({ filename: file, poll_interval: 50 });
    await sleep(200);
    writeFileSync(file, '{"n":1}\n');
    await tool.waitFor('stdout', '{"n":1}');
    appendFileSync(file, '{"n":2}\n');
    await tool.waitFor('stdout', '{"n":2}');
    expect(seen((await stop(tool)).stdout)).toEqual([1, 2]);
  });

  it('waits for a folder that does not exist yet, by polling until it can watch it', async () => {
    const file = join(path(), '..', 'later', 'app.log');
    const tool = follow({ filename: file, poll_interval: 50 });
    await sleep(200);
    mkdirSync(join(file, '..'));
    writeFileSync(file, '{"n":1}\n');
    await tool.waitFor('stdout', '{"n":1}');
    appendFileSync(file, '{"n":2}\n');
    await tool.waitFor('stdout', '{"n":2}');
    expect(seen((await stop(tool)).stdout)).toEqual([1, 2]);
  });

  it('follows in raw pass-through too (Null codecs), lines kept as they are', async () => {
    const file = path();
    writeFileSync(file, 'first line\r\n');
    const tool = start([
      '--input', 'FileTail', '--input_options', JSON.stringify({ filename: file }),
      '--decoder', 'Null', '--encoder', 'Null',
    ]);
    await tool.waitFor('stdout', 'first line\n');
    appendFileSync(file, 'not json {\n\nlast');
    await tool.waitFor('stdout', 'not json {\n');
    const { stdout } = await stop(tool);
    expect(stdout).toBe('first line\nnot json {\nlast\n');
  });

  it('from: "end" skips what the file held at the start', async () => {
    const file = path();
    writeFileSync(file, numbered(1, 50));
    const tool = follow({ filename: file, from: 'end' });
    // Probe until the tool shows it is following, since it starts at an unknown moment.
    for (let probe = 1000; !tool.stdout.includes('"n":'); probe++) {
      appendFileSync(file, `{"n":${probe}}\n`);
      await sleep(50);
    }
    appendFileSync(file, '{"n":2000}\n');
    await tool.waitFor('stdout', '{"n":2000}');
    const got = seen((await stop(tool)).stdout);
    expect(got.every((n) => n >= 1000)).toBe(true);
    expect(got).toContain(2000);
  });

  it('a pattern follows files that appear later, each with its own lines', async () => {
    const first = path('a.log');
    const folder = join(first, '..');
    writeFileSync(first, '{"n":1}\n{"n":');
    const tool = follow({ filename: join(folder, '*.log') });
    await tool.waitFor('stdout', '{"n":1}');
    writeFileSync(join(folder, 'b.log'), '{"n":2}\n');
    writeFileSync(join(folder, 'b.txt'), '{"n":99}\n');
    await tool.waitFor('stdout', '{"n":2}');
    // The partial line of a.log is finished there, not mixed with b.log's lines.
    appendFileSync(first, '3}\n');
    appendFileSync(join(folder, 'b.log'), '{"n":4}\n');
    await tool.waitFor('stdout', '{"n":3}');
    await tool.waitFor('stdout', '{"n":4}');
    expect(seen((await stop(tool)).stdout)).toEqual([1, 2, 3, 4]);
  });

  it('SIGTERM exits 0 having written everything read, a partial last line included', async () => {
    const file = path();
    writeFileSync(file, `${numbered(1, 1000)}{"n":1001}`);
    const tool = follow({ filename: file });
    await tool.waitFor('stdout', '{"n":1000}');
    const { stdout } = await stop(tool);
    expect(seen(stdout)).toEqual(range(1, 1001));
  });
});
