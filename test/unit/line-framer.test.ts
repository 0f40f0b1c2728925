import { isUtf8 } from 'node:buffer';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { FrameSink } from '../../src/io/framer.js';
import { LineFramer } from '../../src/io/line-framer.js';
import { readDescriptor } from '../../src/io/reader.js';
import { RecordingSink } from './recording-sink.js';

const MAX = 8;
const LF = 10;
const CR = 13;

/** One call the framer made, in order: frames (numbered) or pass-through lines (not numbered). */
type Call =
  | { kind: 'frames'; first: number; frames: (string | Buffer)[]; end: number }
  | { kind: 'lines'; lines: Buffer[]; end: number };

type Mode = 'text' | 'bytes' | 'pass' | 'verbatim';

/** Lines starting with R are refused by the `passes` check of the verbatim mode. */
const refused = (bytes: Uint8Array, start: number, end: number) => !(end > start && bytes[start] === 0x52);

/**
 * The RecordingSink of the length framer tests, with the pass-through side
 * (`lines`, `passes`) a chain gives a line framer when frames may pass as bytes.
 */
class LineSink extends RecordingSink {
  readonly log: Call[] = [];
  lines?: (bytes: Buffer, count: number, end: number) => void | Promise<void>;
  readonly passes?: (bytes: Uint8Array, start: number, end: number) => boolean;

  constructor(mode: Mode, asynchronous: boolean) {
    super(mode === 'bytes' ? 'bytes' : 'text');
    // A promise resolved a macrotask later: the framer must wait for it before framing on.
    if (asynchronous) this.answer = () => new Promise<void>((resolve) => setImmediate(resolve));
    if (mode === 'pass' || mode === 'verbatim') {
      this.lines = (bytes, count, end) => {
        expect(bytes.at(-1)).toBe(LF);
        const lines = bytes.toString('latin1').slice(0, -1).split('\n').map((l) => Buffer.from(l, 'latin1'));
        expect(lines).toHaveLength(count);
        this.log.push({ kind: 'lines', lines, end });
        return this.answer?.();
      };
    }
    if (mode === 'verbatim') this.passes = refused;
  }

  override frames(frames: string[] | Buffer[], first: number, end: number): void | Promise<void> {
    const copies = frames.map((f) => (typeof f === 'string' ? f : Buffer.from(f)));
    this.log.push({ kind: 'frames', first, frames: copies, end });
    return super.frames(frames, first, end);
  }
}

/** What a line should become in a mode, worked out from the stream alone. */
interface Expected {
  number: number;
  /** The line's bytes without LF and without a CR before it. */
  bytes: Buffer;
  /** Its raw bytes (a CR before the LF included), for problem copies. */
  raw: Buffer;
  /** Stream offset just past it (past its LF; the stream's length for a last line without LF). */
  end: number;
  outcome: 'skipped' | 'over-long' | 'encoding' | 'delivered';
}

function expectedLines(stream: Buffer, mode: Mode): Expected[] {
  const out: Expected[] = [];
  let start = 0;
  let number = 1;
  while (start < stream.length) {
    const lf = stream.indexOf(LF, start);
    const stop = lf < 0 ? stream.length : lf;
    const end = lf < 0 ? stream.length : lf + 1;
    const raw = stream.subarray(start, stop);
    const bytes = raw.at(-1) === CR ? raw.subarray(0, -1) : raw;
    let outcome: Expected['outcome'] = 'delivered';
    if (bytes.length === 0) outcome = 'skipped';
    else if (bytes.length > MAX) outcome = 'over-long';
    // Null pass-through takes any bytes; text sinks, and JSON pass-through which decodes what is not UTF-8, do not.
    else if ((mode === 'text' || mode === 'verbatim') && !isUtf8(bytes)) outcome = 'encoding';
    out.push({ number: number++, bytes, raw, end, outcome });
    start = end;
  }
  return out;
}

/**
 * Checks what the framer handed over against the lines of the stream: each
 * call hands on exactly the lines delivered between the previous call's `end`
 * and its own; a frames call's `end` is just past its last frame; frames are
 * numbered by their place in the stream, with '' for reported or empty lines.
 * Faults are collected and compared once: thousands of cuts are checked.
 */
function check(sink: LineSink, stream: Buffer, mode: Mode): void {
  const lines = expectedLines(stream, mode);
  const byNumber = new Map(lines.map((l) => [l.number, l]));
  const delivered = lines.filter((l) => l.outcome === 'delivered');
  const boundaries = new Set(lines.map((l) => l.end));
  const faults: string[] = [];
  let previousEnd = 0;
  for (const call of sink.log) {
    if (call.end <= previousEnd) faults.push(`end ${call.end} does not come after ${previousEnd}`);
    if (!boundaries.has(call.end)) faults.push(`end ${call.end} is not just after a line`);
    const due = delivered.filter((l) => l.end > previousEnd && l.end <= call.end).map((l) => l.number);
    if (call.kind === 'frames') {
      if (mode === 'pass') faults.push('frames in Null pass-through: every line passes as bytes');
      const last = byNumber.get(call.first + call.frames.length - 1);
      if (call.end !== last?.end) faults.push(`frames ${call.first}.. end at ${call.end}, their last line at ${last?.end}`);
      const handed: number[] = [];
      call.frames.forEach((frame, i) => {
        const line = byNumber.get(call.first + i);
        if (!line) return faults.push(`frame ${call.first + i} is past the last line`);
        if (frame.length === 0) {
          if (line.outcome === 'delivered') faults.push(`line ${line.number} handed as ''`);
          return;
        }
        handed.push(line.number);
        const same = typeof frame === 'string' ? mode !== 'bytes' && frame === line.bytes.toString('utf8') : mode === 'bytes' && frame.equals(line.bytes);
        if (!same) faults.push(`line ${line.number} handed as ${JSON.stringify(frame.toString())}`);
      });
      if (handed.join() !== due.join()) faults.push(`frames call handed lines ${handed.join()}, due ${due.join()}`);
    } else {
      const expected = due.map((n) => byNumber.get(n)!.bytes.toString('hex'));
      if (call.lines.map((l) => l.toString('hex')).join() !== expected.join()) faults.push(`lines call handed other lines than ${due.join()}`);
      // What `passes` refuses is decoded the normal way, never passed as bytes.
      if (mode === 'verbatim' && call.lines.some((l) => !refused(l, 0, l.length))) faults.push('a refused line passed as bytes');
    }
    previousEnd = call.end;
  }
  const lastDelivered = delivered.at(-1);
  if (lastDelivered && previousEnd < lastDelivered.end) faults.push(`the last call ends at ${previousEnd}, before line ${lastDelivered.number}`);
  for (const problem of sink.problems) {
    const line = byNumber.get(problem.number);
    const bytes = Buffer.from(problem.bytes);
    // An over-long line is copied from its start, as much of it as had come; an encoding problem whole.
    const copied =
      problem.kind === 'over-long' ? bytes.length > MAX && line?.raw.subarray(0, bytes.length).equals(bytes) : line?.bytes.equals(bytes);
    if (!copied) faults.push(`problem ${problem.kind} of line ${problem.number} copies other bytes`);
  }
  expect(faults).toEqual([]);
  const problems = lines.filter((l) => l.outcome === 'over-long' || l.outcome === 'encoding');
  expect(sink.problems.map((p) => `${p.kind} ${p.number}`)).toEqual(problems.map((l) => `${l.outcome} ${l.number}`));
}

/** `check`, saying how the stream was cut when it fails. */
function checkCut(sink: LineSink, stream: Buffer, mode: Mode, chunks: Buffer[]): void {
  try {
    check(sink, stream, mode);
  } catch (error) {
    const how = chunks.length === 2 ? `cut at byte ${chunks[0]!.length}` : 'one byte at a time';
    (error as Error).message = `${how}: ${(error as Error).message}`;
    throw error;
  }
}

/** Pushes `chunks` (awaiting each push, as the reader does), then ends. */
async function feed(framer: LineFramer, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    const wait = framer.push(chunk);
    if (wait) await wait;
  }
  const wait = framer.end();
  if (wait) await wait;
  expect(framer.held).toBe(0);
}

/**
 * Feeds the way the reader does: one buffer read into again and again, the
 * bytes held of a cut line moved to its start first, and everything else in it
 * overwritten before the next read, so a framer keeping a view it may not keep shows.
 */
async function feedReused(framer: LineFramer, chunks: Buffer[]): Promise<void> {
  const buffer = Buffer.alloc(4096);
  for (const chunk of chunks) {
    const held = framer.moveHeldTo(buffer);
    buffer.fill(0x7e, held);
    chunk.copy(buffer, held);
    const wait = framer.push(buffer.subarray(held, held + chunk.length));
    if (wait) await wait;
  }
  const held = framer.moveHeldTo(buffer);
  buffer.fill(0x7e, held);
  const wait = framer.end();
  if (wait) await wait;
}

/** The stream whole, cut in two at every byte, and one byte at a time. */
function cuts(stream: Buffer): Buffer[][] {
  const ways: Buffer[][] = [];
  for (let at = 0; at <= stream.length; at++) ways.push([Buffer.from(stream.subarray(0, at)), Buffer.from(stream.subarray(at))]);
  ways.push([...stream].map((byte) => Buffer.from([byte])));
  return ways;
}

const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

const STREAMS: Record<string, Buffer> = {
  'a mixed stream ending in a line without LF': bytes(
    'abc\n',
    'crlf\r\n',
    '\n',
    '\r\n',
    'toolongline12345\n',
    'exactly8\r\n',
    [0x61, 0xff, 0x62, LF],
    'é€\n',
    'R-no\n',
    '0123456789\r\n',
    'a\rb\n',
    '𝄞x\n',
    [0xe2, 0x82, LF],
    '12345678\n',
    '123456789\n',
    'R2\r\n',
    'ok\n',
    'last',
  ),
  'clean lines only': bytes('one\n', 'two\n', '{"a":1}\n', 'four\n'),
  'an over-long last line without LF': bytes('ab\n', 'Rx\n', 'far too long a line'),
  'a last line ending in CR, and empty lines first': bytes('\n', '\n', 'a\n', 'x\r'),
  'a line of max_line_length and a CR, at the end': bytes('a\n', '12345678\r'),
};

const MODES: Mode[] = ['text', 'bytes', 'pass', 'verbatim'];

describe('LineFramer', () => {
  for (const [name, stream] of Object.entries(STREAMS)) {
    describe(name, () => {
      for (const mode of MODES) {
        for (const asynchronous of [false, true]) {
          it(`gives the same lines, problems, numbers and ends however it is cut (${mode}, sink ${asynchronous ? 'waiting' : 'at once'})`, async () => {
            for (const chunks of cuts(stream)) {
              const sink = new LineSink(mode, asynchronous);
              await feed(new LineFramer(sink, MAX), chunks);
              checkCut(sink, stream, mode, chunks);
            }
          });
        }
        it(`keeps no view of a chunk past its push (${mode}, one reused buffer)`, async () => {
          for (const chunks of cuts(stream)) {
            for (const asynchronous of [false, true]) {
              const sink = new LineSink(mode, asynchronous);
              await feedReused(new LineFramer(sink, MAX), chunks);
              checkCut(sink, stream, mode, chunks);
            }
          }
        });
      }
    });
  }

  it('hands clean lines through in one call, counted', () => {
    const sink = new LineSink('pass', false);
    const chunk = bytes('one\n', 'two\n', 'three\n', 'rest');
    const framer = new LineFramer(sink, MAX);
    expect(framer.push(chunk)).toBeUndefined();
    expect(sink.log).toEqual([{ kind: 'lines', lines: [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')], end: 14 }]);
    expect(framer.held).toBe(4);
  });

  it('batches a long run of text lines in pieces small enough to die young, ends in order', async () => {
    const line = 'x'.repeat(99) + '\n';
    const stream = Buffer.from(line.repeat(2000));
    for (const asynchronous of [false, true]) {
      const sink = new LineSink('text', asynchronous);
      await feed(new LineFramer(sink, 1000), [stream]);
      expect(sink.log.length).toBeGreaterThan(1);
      expect(sink.numbered().map((f) => f.number)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      const ends = sink.log.map((c) => c.end);
      expect(ends.at(-1)).toBe(stream.length);
      for (const [i, call] of sink.log.entries()) {
        expect(call.kind).toBe('frames');
        if (call.kind === 'frames') expect(call.end).toBe((call.first + call.frames.length - 1) * line.length);
        if (i > 0) expect(call.end).toBeGreaterThan(ends[i - 1]!);
      }
    }
  });

  it('numbers an over-long line held at the end of a chunk after the lines before it, even when the sink waits', async () => {
    // Short lines making more than one text batch, then the start of an over-long line.
    const stream = Buffer.concat([Buffer.from('ab\n'.repeat(30_000)), Buffer.from('z'.repeat(MAX + 5))]);
    for (const mode of MODES) {
      for (const asynchronous of [false, true]) {
        const sink = new LineSink(mode, asynchronous);
        const framer = new LineFramer(sink, MAX);
        const wait = framer.push(stream);
        if (wait) await wait;
        expect(sink.problems.map((p) => p.number)).toEqual([30_001]);
      }
    }
  });
});

describe('LineFramer read from a file, stopped', () => {
  it('frames the line the last read cut, and not the rest of the file', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'mp-framer-'));
    try {
      const path = join(folder, 'big.log');
      // 100-byte lines: a 64 KiB read ends inside line 656.
      const line = (n: number) => `${String(n).padStart(99, '0')}\n`;
      writeFileSync(path, Array.from({ length: 5000 }, (_, i) => line(i + 1)).join(''));
      const stopping = new AbortController();
      const sink = new LineSink('text', false);
      // Stops as the first batch is handed over, as a signal would.
      sink.answer = () => stopping.abort();
      const fd = openSync(path, 'r');
      try {
        await readDescriptor(fd, new LineFramer(sink, 1000), stopping.signal, () => Readable.from([]));
      } finally {
        closeSync(fd);
      }
      const numbers = sink.numbered().map((f) => f.number);
      expect(numbers).toEqual(Array.from({ length: 656 }, (_, i) => i + 1));
      expect(sink.numbered().at(-1)!.frame).toBe(line(656).slice(0, -1));
      expect(sink.log.at(-1)!.end).toBe(656 * 100);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

// Keeps the FrameSink shape checked: a LineSink is what a chain hands a line framer.
const _shape: FrameSink = new LineSink('verbatim', false);
void _shape;
