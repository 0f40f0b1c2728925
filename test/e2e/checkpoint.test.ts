// File input checkpoints through the real binary: stop (SIGTERM, SIGINT, kill -9) and
// restart, rotation and replacement while the program is down, holds in a filter.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { records, run, sleep, start, tempDir, until, type Running } from './helpers.js';

const dir = tempDir();
let cases = 0;
/** A fresh folder per test. */
const folder = () => {
  const path = join(dir, `case-${++cases}`);
  mkdirSync(path);
  return path;
};

// A filter that makes each batch wait a little (its messages wait together), so a stop lands mid-file.
const SLOW = join(dir, 'slow.mjs');
writeFileSync(SLOW, 'export default (message) => new Promise((resolve) => setTimeout(() => resolve(message), 15));\n');

// Multi-line-like: each message is held in keyed state until the next one arrives; flush sends the last.
const HOLD = join(dir, 'hold.mjs');
writeFileSync(
  HOLD,
  `export function create(options, context) {
  const state = context.keyed({ maxKeys: 1, evict: (key, value) => value });
  return {
    filter(message) {
      const previous = state.take('last');
      const out = [...(previous === undefined ? [] : [previous]), ...state.set('last', message)];
      return out.length > 0 ? out : undefined;
    },
    flush: () => state.takeAll().map(([, value]) => value),
  };
}
`,
);

/**
 * Lines of about 400 bytes: a 64 KiB read holds ~160 of them, and the slow filter
 * takes ~15 ms a batch, so a first run of TOTAL lines would last over half a second:
 * the stop lands mid-file.
 */
const TOTAL = 6000;
const line = (tag: string, n: number) => `${JSON.stringify({ tag, n, pad: 'x'.repeat(380) })}\n`;
const lines = (tag: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => line(tag, from + i)).join('');

/** `tag:n` of each whole line of an output file; a line cut by kill -9 is left out. */
function outputOf(path: string): string[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = JSON.parse(l) as { tag: string; n: number };
      return `${m.tag}:${m.n}`;
    });
}

/** The offset just past each line of lines(tag, 1, count). */
function lineEnds(tag: string, count: number): number[] {
  let at = 0;
  return Array.from({ length: count }, (_, i) => (at += line(tag, i + 1).length));
}

const names = (tag: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${tag}:${from + i}`);

interface Entry {
  path: string;
  position: number;
  fingerprint: string;
}
function checkpointOf(path: string): Entry[] {
  if (!existsSync(path)) return [];
  return (JSON.parse(readFileSync(path, 'utf8')) as { files: Entry[] }).files;
}

interface Options {
  input: string;
  checkpoint: string;
  output: string;
  follow?: boolean;
  from?: 'beginning' | 'end';
  filter?: string;
}

function startRun(o: Options): Running {
  const args = [
    '--input',
    'File',
    '--input_options',
    JSON.stringify({ filename: o.input, checkpoint: o.checkpoint, checkpoint_interval: 50, follow: o.follow ?? false, poll_interval: 20, from: o.from }),
    '--output',
    'File',
    '--output_options',
    JSON.stringify({ filename: o.output }),
  ];
  if (o.filter) args.push('--filter', o.filter);
  return start(args);
}

async function sigterm(running: Running, signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): Promise<void> {
  running.child.kill(signal);
  const { code, stderr } = await running.done;
  expect(stderr).toBe('');
  expect(code).toBe(0);
}

describe('File input checkpoint', () => {
  for (const [signal, follow] of [['SIGTERM', false], ['SIGTERM', true], ['SIGINT', false], ['SIGINT', true]] as const) {
    it(`${signal} mid-file, then a restart: every line exactly once across both runs (follow: ${follow})`, async () => {
      const d = folder();
      const input = join(d, 'app.log');
      const checkpoint = join(d, 'app.pos');
      const output = join(d, 'out.ndjson');
      writeFileSync(input, lines('a', 1, TOTAL));
      const first = startRun({ input, checkpoint, output, follow, filter: SLOW });
      await until(() => outputOf(output).length > 0, 'the first lines out');
      await sigterm(first, signal);
      expect(outputOf(output).length).toBeLessThan(TOTAL);

      // At full speed now (lines pass through as bytes).
      const second = startRun({ input, checkpoint, output, follow });
      if (follow) {
        await until(() => outputOf(output).length >= TOTAL, 'every line out');
        appendFileSync(input, lines('a', TOTAL + 1, TOTAL + 10));
        await until(() => outputOf(output).length >= TOTAL + 10, 'the appended lines out');
        await sigterm(second);
      } else {
        const { code, stderr } = await second.done;
        expect(stderr).toBe('');
        expect(code).toBe(0);
      }
      expect(outputOf(output)).toEqual(names('a', 1, follow ? TOTAL + 10 : TOTAL));
      expect(checkpointOf(checkpoint)).toMatchObject([{ path: input, position: statSync(input).size }]);
    });
  }

  it('kill -9, then a restart: every line at least once, the duplicates only those after the last save', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const firstOut = join(d, 'out-1.ndjson');
    const secondOut = join(d, 'out-2.ndjson');
    writeFileSync(input, lines('a', 1, TOTAL));
    const first = startRun({ input, checkpoint, output: firstOut, filter: SLOW });
    await until(() => checkpointOf(checkpoint).some((e) => e.position > 0), 'a first save');
    first.child.kill('SIGKILL');
    await first.done;
    const delivered = outputOf(firstOut);
    const [saved] = checkpointOf(checkpoint);
    // The save read now is the last one: what the second run resumes from, just after a line.
    const resumeAfter = lineEnds('a', TOTAL).indexOf(saved!.position) + 1;
    expect(delivered.length).toBeLessThan(TOTAL);
    // Never ahead of the output: every line before the saved position was written.
    expect(resumeAfter).toBeGreaterThan(0);
    expect(resumeAfter).toBeLessThanOrEqual(delivered.length);
    expect(delivered).toEqual(names('a', 1, delivered.length));

    const { code, stderr } = await run([
      '--input',
      'File',
      '--input_options',
      JSON.stringify({ filename: input, checkpoint, checkpoint_interval: 50 }),
      '--output',
      'File',
      '--output_options',
      JSON.stringify({ filename: secondOut }),
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // The second run starts right after the saved position: the duplicates are the
    // contiguous run from there to where the first run was killed, nothing older.
    const again = outputOf(secondOut);
    expect(again).toEqual(names('a', resumeAfter + 1, TOTAL));
    const firstRun = new Set(delivered);
    expect(again.filter((l) => firstRun.has(l))).toEqual(names('a', resumeAfter + 1, delivered.length));
    expect(new Set([...delivered, ...again]).size).toBe(TOTAL);
  });

  it('a file rotated while the program was down: the rest of the old one, then the new one from its start', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const output = join(d, 'out.ndjson');
    writeFileSync(input, lines('old', 1, 100));
    const first = startRun({ input, checkpoint, output, follow: true });
    await until(() => outputOf(output).length >= 100, 'the old lines out');
    await sigterm(first);
    // While it is down: the writer adds to the old file, logrotate renames it, a new file starts.
    appendFileSync(input, lines('old', 101, 150));
    renameSync(input, join(d, 'app.log.1'));
    writeFileSync(input, lines('new', 1, 50));

    const second = startRun({ input, checkpoint, output, follow: true });
    await until(() => outputOf(output).length >= 200, 'the rest of the old file and the new one');
    await sleep(100);
    await sigterm(second);
    expect(outputOf(output)).toEqual([...names('old', 1, 150), ...names('new', 1, 50)]);
  });

  it('without follow, a new file at the name is read from its start, not from the old position', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const output = join(d, 'out.ndjson');
    writeFileSync(input, lines('old', 1, 100));
    expect((await startRun({ input, checkpoint, output }).done).code).toBe(0);
    renameSync(input, join(d, 'app.log.1'));
    // Longer than the old position, so a position taken for this file would skip lines.
    writeFileSync(input, lines('new', 1, 150));
    const { code, stderr } = await startRun({ input, checkpoint, output }).done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(outputOf(output)).toEqual([...names('old', 1, 100), ...names('new', 1, 150)]);
  });

  it('a file replaced in place by one of the same size (same inode) is known by its fingerprint and read again', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const output = join(d, 'out.ndjson');
    writeFileSync(input, lines('one', 1, 20));
    expect((await startRun({ input, checkpoint, output }).done).code).toBe(0);
    const { ino, size } = statSync(input);
    // The same size, the same inode (written over in place), other bytes.
    writeFileSync(input, lines('two', 1, 20));
    expect(statSync(input)).toMatchObject({ ino, size });
    const { code, stderr } = await startRun({ input, checkpoint, output }).done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(outputOf(output)).toEqual([...names('one', 1, 20), ...names('two', 1, 20)]);
    // And the same file again is not read again.
    expect((await startRun({ input, checkpoint, output }).done).code).toBe(0);
    expect(outputOf(output)).toHaveLength(40);
  });

  it('a checkpoint in a folder that does not exist is a clear error at start: exit 1, one line', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    writeFileSync(input, lines('a', 1, 3));
    const checkpoint = join(d, 'missing', 'app.pos');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: input, checkpoint })]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(stderr).toBe(`message-passing: File input: checkpoint ${checkpoint}: its folder ${join(d, 'missing')} does not exist (create it first)\n`);
  });

  it('a damaged checkpoint file is a clear error at start: exit 1, one line', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    writeFileSync(input, lines('a', 1, 3));
    const checkpoint = join(d, 'app.pos');
    writeFileSync(checkpoint, '{"version": 1, "files": [\n');
    const { code, stdout, stderr } = await run(['--input', 'File', '--input_options', JSON.stringify({ filename: input, checkpoint })]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      `message-passing: File input: checkpoint ${checkpoint}: not a checkpoint file of this program (not JSON) (give a file in a writable folder; delete a damaged one to start over)\n`,
    );
  });

  it('line numbers in error records count from where reading resumed', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const output = join(d, 'out.ndjson');
    writeFileSync(input, lines('a', 1, 3));
    expect((await startRun({ input, checkpoint, output }).done).code).toBe(0);
    appendFileSync(input, `${line('a', 4)}not json\n`);
    const { code, stderr } = await startRun({ input, checkpoint, output }).done;
    expect(code).toBe(0);
    // The 5th line of the file, the 2nd since the restart.
    expect(records(stderr)).toEqual([{ error: 'decode', reason: expect.any(String), source: `file:${input}:2`, frame: 'not json' }]);
    expect(outputOf(output)).toEqual(names('a', 1, 4));
  });

  it('with from: "end", a checkpoint that knows the file wins: the lines appended since it are read', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const output = join(d, 'out.ndjson');
    writeFileSync(input, lines('a', 1, 10));
    expect((await startRun({ input, checkpoint, output }).done).code).toBe(0);
    appendFileSync(input, lines('a', 11, 15));
    const second = startRun({ input, checkpoint, output, follow: true, from: 'end' });
    await until(() => outputOf(output).length >= 15, 'the lines appended while the program was down');
    appendFileSync(input, lines('a', 16, 17));
    await until(() => outputOf(output).length >= 17, 'the lines appended since');
    await sigterm(second);
    expect(outputOf(output)).toEqual(names('a', 1, 17));
  });

  it('does not pass a line a filter holds in keyed state: after kill -9 that line comes again', async () => {
    const d = folder();
    const input = join(d, 'app.log');
    const checkpoint = join(d, 'app.pos');
    const firstOut = join(d, 'out-1.ndjson');
    const secondOut = join(d, 'out-2.ndjson');
    writeFileSync(input, lines('a', 1, 5));
    const first = startRun({ input, checkpoint, output: firstOut, follow: true, filter: HOLD });
    await until(() => outputOf(firstOut).length >= 4, 'lines 1 to 4 out (5 held)');
    // 6 lets 5 go, and is held in its turn.
    appendFileSync(input, lines('a', 6, 6));
    await until(() => outputOf(firstOut).length >= 5, 'line 5 out (6 held)');
    const afterFive = lineEnds('a', 5)[4];
    await until(() => checkpointOf(checkpoint)[0]?.position === afterFive, 'the save of the position after line 5');
    // Several intervals more: a save past the held line would show now.
    await sleep(250);
    expect(checkpointOf(checkpoint)[0]?.position).toBe(afterFive);
    first.child.kill('SIGKILL');
    await first.done;
    expect(outputOf(firstOut)).toEqual(names('a', 1, 5));

    // The held line 6 was never written: the restart reads it again.
    const { code, stderr } = await run([
      '--input',
      'File',
      '--input_options',
      JSON.stringify({ filename: input, checkpoint }),
      '--output',
      'File',
      '--output_options',
      JSON.stringify({ filename: secondOut }),
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(outputOf(secondOut)).toEqual(names('a', 6, 6));
  });
});
