// Codecs and framing as a user sees them: what comes out, and the error record for what cannot.
import { describe, expect, it } from 'vitest';
import { lines, run } from './helpers.js';

type Record = { error: string; reason: string; source: string; frame: string; encoding?: string };
const records = (stderr: string) => lines(stderr) as Record[];

describe.concurrent('codecs', () => {
  it('the Null encoder writes a string as it is and any other value as JSON', async () => {
    const { stdout } = await run(['--encoder', 'Null'], { input: '"plain"\n{"a":1}\n[1,"x"]\n3\n' });
    expect(stdout).toBe('plain\n{"a":1}\n[1,"x"]\n3\n');
  });

  it('the Decoder filter decodes a Null-decoded line mid-chain', async () => {
    const { code, stdout, stderr } = await run(['--decoder', 'Null', '--filter', 'Decoder'], { input: '{"a":1}\nnope\n' });
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ a: 1 }]);
    expect(records(stderr)).toMatchObject([{ error: 'filter', source: 'stdin:2', stage: 'filter Decoder', frame: 'nope' }]);
  });

  it('the Encoder filter encodes mid-chain, and the Null encoder writes that text', async () => {
    const { stdout } = await run(['--filter', 'Encoder', '--encoder', 'Null'], { input: '{"a":"b"}\n' });
    expect(stdout).toBe('{"a":"b"}\n');
    const twice = await run(['--filter', 'Encoder'], { input: '{"a":"b"}\n' });
    expect(lines(twice.stdout)).toEqual(['{"a":"b"}']);
  });
});

describe.concurrent('bad input becomes one error record each; the rest goes on', () => {
  it('a line that is not JSON: {error, reason, source: "stdin:LINE", frame}, exit 0', async () => {
    const { code, stdout, stderr } = await run([], { input: '{"n":1}\n\nnot json\n{"n":2}\n{"n":3\n{"n":4}' });
    expect(code).toBe(0);
    expect(stdout).toBe('{"n":1}\n{"n":2}\n{"n":4}\n');
    const [first, second, ...rest] = records(stderr);
    expect(rest).toEqual([]);
    expect(Object.keys(first!)).toEqual(['error', 'reason', 'source', 'frame']);
    expect(first).toMatchObject({ error: 'decode', source: 'stdin:3', frame: 'not json' });
    expect(first!.reason).toMatch(/JSON/);
    expect(second).toMatchObject({ error: 'decode', source: 'stdin:5', frame: '{"n":3' });
  });

  it('a frame copied into a record is cut at 1024 characters', async () => {
    const { stderr } = await run([], { input: `x${'y'.repeat(5000)}\n` });
    expect(records(stderr)[0]!.frame).toBe(`x${'y'.repeat(1023)}`);
  });

  it('an over-long line is reported, not held in memory, and the lines around it go on', async () => {
    const input = `{"n":1}\n${'z'.repeat(300)}\n{"n":2}\n${'w'.repeat(50)}`;
    const { code, stdout, stderr } = await run(['--input_options', '{max_line_length: 40}'], { input });
    expect(code).toBe(0);
    expect(stdout).toBe('{"n":1}\n{"n":2}\n');
    expect(records(stderr)).toMatchObject([
      { error: 'over-long', source: 'stdin:2', frame: 'z'.repeat(300) },
      { error: 'over-long', source: 'stdin:4', frame: 'w'.repeat(50) },
    ]);
  });

  it('over-long lines across many reads: every good line out, one record per long line, right line numbers', async () => {
    // Long lines that end a read of standard input are where a line can be lost or counted twice.
    const good = 300;
    const input = Array.from({ length: good }, (_, i) => `{"n":${i + 1}}\n${'x'.repeat(3000 + (i % 7) * 11)}\n`).join('');
    for (const args of [[], ['--decoder', 'Null', '--encoder', 'Null']]) {
      const { code, stdout, stderr } = await run([...args, '--input_options', '{max_line_length: 1000}'], { input });
      expect(code).toBe(0);
      expect(stdout).toBe(Array.from({ length: good }, (_, i) => `{"n":${i + 1}}\n`).join(''));
      const sources = records(stderr).map((r) => r.source);
      expect(sources).toEqual(Array.from({ length: good }, (_, i) => `stdin:${2 * i + 2}`));
    }
  });

  it('a last line without LF that is too long is reported with its own line number', async () => {
    const { stdout, stderr } = await run(['--input_options', '{max_line_length: 10}'], { input: `{"n":1}\n${'x'.repeat(40)}` });
    expect(stdout).toBe('{"n":1}\n');
    expect(records(stderr)).toMatchObject([{ error: 'over-long', source: 'stdin:2' }]);
  });

  it('a line that is not valid UTF-8 is reported with its bytes in base64', async () => {
    const bad = Buffer.from([0xff, 0xfe, 0x7b, 0x7d]);
    const input = Buffer.concat([Buffer.from('{"n":1}\n'), bad, Buffer.from('\n{"n":2}\n')]);
    const { code, stdout, stderr } = await run([], { input });
    expect(code).toBe(0);
    expect(stdout).toBe('{"n":1}\n{"n":2}\n');
    expect(records(stderr)).toEqual([
      { error: 'encoding', reason: 'line is not valid UTF-8', source: 'stdin:2', frame: bad.toString('base64'), encoding: 'base64' },
    ]);
  });
});
