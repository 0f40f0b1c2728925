import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LengthPrefix } from '../../src/io/framer.js';
import { LengthFramer, PROBLEM_BYTES } from '../../src/io/length-framer.js';
import { RecordingSink } from './recording-sink.js';

const PREFIXES: LengthPrefix[] = [1, 2, 4, 8];
const MAX = 64;

function lengthBytes(length: number | bigint, prefix: LengthPrefix): Buffer {
  const head = Buffer.alloc(prefix);
  let rest = BigInt(length);
  for (let i = prefix - 1; i >= 0; i--) {
    head[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return head;
}

function encode(frames: readonly Uint8Array[], prefix: LengthPrefix): Buffer {
  return Buffer.concat(frames.flatMap((f) => [lengthBytes(f.length, prefix), f]));
}

/** Stream offset just past each frame, by frame number (index 0 is frame 1). */
function frameEnds(frames: readonly Uint8Array[], prefix: LengthPrefix): number[] {
  let at = 0;
  return frames.map((f) => (at += prefix + f.length));
}

const euros = Buffer.from('€'.repeat(21) + 'a'); // 64 bytes, 3-byte characters
const binary = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x0d]);
const SAMPLE: Buffer[] = [
  Buffer.from('{"hello":"world"}'),
  Buffer.alloc(0),
  euros,
  binary,
  Buffer.from('héllo €𝄞'),
  Buffer.alloc(0),
  Buffer.from('x'),
  Buffer.alloc(0),
];

/**
 * Pushes `chunks`, then ends, checking after each push that every frame the
 * bytes so far complete has been handed over, at most one batch per push, and
 * that every batch's `end` is the offset just past its last frame.
 */
function feed(framer: LengthFramer, sink: RecordingSink, chunks: Buffer[], ends: number[]): void {
  let pushed = 0;
  for (const chunk of chunks) {
    const batches = sink.batches.length;
    expect(framer.push(chunk)).toBeUndefined();
    pushed += chunk.length;
    expect(sink.batches.length - batches).toBeLessThanOrEqual(1);
    expect(sink.numbered().length).toBe(ends.filter((e) => e <= pushed).length);
    const completed = ends.filter((e) => e <= pushed);
    expect(framer.held).toBe(pushed - (completed.at(-1) ?? 0));
  }
  framer.end();
  for (const batch of sink.batches) {
    expect(batch.frames.length).toBeGreaterThan(0);
    expect(batch.end).toBe(ends[batch.first + batch.frames.length - 2]);
  }
}

/** The frames a text sink should get: strings, and '' for what is not UTF-8. */
function asText(frames: readonly Buffer[]): string[] {
  return frames.map((f) => (Buffer.from(f.toString('utf8')).equals(f) ? f.toString('utf8') : ''));
}

function cuts(stream: Buffer): Buffer[][] {
  const ways: Buffer[][] = [[stream]];
  for (let at = 0; at <= stream.length; at++) ways.push([stream.subarray(0, at), stream.subarray(at)]);
  ways.push([...stream].map((byte) => Buffer.from([byte])));
  return ways;
}

describe('LengthFramer', () => {
  for (const prefix of PREFIXES) {
    describe(`with a ${prefix}-byte prefix`, () => {
      const stream = encode(SAMPLE, prefix);
      const ends = frameEnds(SAMPLE, prefix);

      it('gives the same frames, numbers and ends however the stream is cut (bytes)', () => {
        for (const chunks of cuts(stream)) {
          const sink = new RecordingSink('bytes');
          const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
          feed(framer, sink, chunks, ends);
          expect(sink.numbered()).toEqual(SAMPLE.map((frame, i) => ({ number: i + 1, frame })));
          expect(sink.problems).toEqual([]);
          expect(framer.broken).toBe(false);
          expect(framer.held).toBe(0);
        }
      });

      it('gives the same strings and encoding problems however the stream is cut (text)', () => {
        for (const chunks of cuts(stream)) {
          const sink = new RecordingSink('text');
          const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
          feed(framer, sink, chunks, ends);
          expect(sink.numbered()).toEqual(asText(SAMPLE).map((frame, i) => ({ number: i + 1, frame })));
          expect(sink.problems).toEqual([{ kind: 'encoding', reason: 'frame is not valid UTF-8', number: 4, bytes: binary }]);
        }
      });

      it('hands frames a chunk holds whole as views of it, and batches them', () => {
        const sink = new RecordingSink('bytes');
        const chunk = Buffer.from(stream);
        new LengthFramer(sink, { prefix, maxFrameBytes: MAX }).push(chunk);
        expect(sink.batches).toHaveLength(1);
        expect(sink.batches[0]).toMatchObject({ first: 1, end: stream.length });
        for (const frame of sink.handed[0]! as Buffer[]) {
          expect(frame.buffer).toBe(chunk.buffer);
          expect(frame.byteOffset).toBeGreaterThanOrEqual(chunk.byteOffset);
          expect(frame.byteOffset + frame.length).toBeLessThanOrEqual(chunk.byteOffset + chunk.length);
        }
      });

      it('numbers frames across the stream', () => {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
        framer.push(stream);
        framer.push(stream);
        expect(sink.batches.map((b) => [b.first, b.end])).toEqual([
          [1, stream.length],
          [SAMPLE.length + 1, 2 * stream.length],
        ]);
      });

      it('reports a partial frame at the end, and nothing else', () => {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
        const head = lengthBytes(10, prefix);
        framer.push(Buffer.concat([encode([Buffer.from('ok')], prefix), head, Buffer.from('abc')]));
        expect(framer.held).toBe(prefix + 3);
        framer.end();
        expect(sink.numbered()).toEqual([{ number: 1, frame: Buffer.from('ok') }]);
        expect(sink.problems).toEqual([
          {
            kind: 'truncated',
            reason: 'stream ended 3 bytes into a frame of 10 bytes',
            number: 2,
            bytes: Buffer.concat([head, Buffer.from('abc')]),
          },
        ]);
        expect(framer.held).toBe(0);
        framer.end();
        expect(sink.problems).toHaveLength(1);
      });

      it('reports a frame whose length came but none of its bytes', () => {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
        const head = lengthBytes(5, prefix);
        for (const byte of head) framer.push(Buffer.from([byte]));
        expect(framer.held).toBe(prefix);
        framer.end();
        expect(sink.problems).toEqual([{ kind: 'truncated', reason: 'stream ended 0 bytes into a frame of 5 bytes', number: 1, bytes: head }]);
        expect(sink.batches).toEqual([]);
      });

      if (prefix > 1) {
        it('reports a partial length at the end', () => {
          const sink = new RecordingSink('bytes');
          const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
          framer.push(Buffer.concat([encode([Buffer.from('ok')], prefix), Buffer.from([0])]));
          expect(framer.held).toBe(1);
          framer.end();
          expect(sink.problems).toEqual([
            { kind: 'truncated', reason: `stream ended 1 bytes into the ${prefix}-byte length of a frame`, number: 2, bytes: Buffer.from([0]) },
          ]);
          expect(sink.batches).toHaveLength(1);
        });
      }

      it('ends quietly on a frame boundary and on an empty stream', () => {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
        framer.end();
        framer.push(Buffer.alloc(0));
        framer.push(stream);
        framer.end();
        expect(sink.problems).toEqual([]);
        expect(sink.batches).toHaveLength(1);
      });

      it('breaks on a length over the cap, after handing over the frames before it', () => {
        const over = Math.min(2 ** (8 * prefix) - 1, 2 ** 32);
        const head = lengthBytes(over, prefix);
        const after = Buffer.alloc(10_000, 'z');
        for (const chunks of [[Buffer.concat([stream, head, after])], [stream, head.subarray(0, 1), Buffer.concat([head.subarray(1), after])]]) {
          const sink = new RecordingSink('bytes');
          const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
          for (const chunk of chunks) framer.push(chunk);
          expect(sink.numbered().map((f) => f.frame)).toEqual(SAMPLE);
          expect(sink.problems).toHaveLength(1);
          const problem = sink.problems[0]!;
          expect(problem).toMatchObject({
            kind: 'over-long',
            reason: `frame length ${over} bytes is over the cap of ${MAX} bytes`,
            number: SAMPLE.length + 1,
          });
          // The length and what was at hand of the frame, cut: a 1-byte length pushed alone has nothing after it.
          const atHand = chunks.length > 1 && prefix === 1 ? head : Buffer.concat([head, after]).subarray(0, PROBLEM_BYTES);
          expect(problem.bytes).toEqual(atHand);
          // Reported after the frames before it, as they come first in the stream.
          expect(sink.calls.at(-1)).toBe('problem over-long');
          expect(sink.calls.filter((c) => c !== 'frames')).toEqual(['problem over-long']);
          expect(framer.broken).toBe(true);
          expect(framer.held).toBe(0);
          expect(framer.push(stream)).toBeUndefined();
          framer.end();
          expect(sink.batches.length).toBeLessThanOrEqual(1);
          expect(sink.problems).toHaveLength(1);
        }
      });

      it('takes a frame of exactly the cap and refuses one byte more', () => {
        const cap = Math.min(MAX, 2 ** (8 * prefix) - 2);
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: cap });
        framer.push(encode([Buffer.alloc(cap, 1), Buffer.alloc(cap + 1, 2)], prefix));
        expect(sink.numbered()).toEqual([{ number: 1, frame: Buffer.alloc(cap, 1) }]);
        expect(sink.problems.map((p) => [p.kind, p.number])).toEqual([['over-long', 2]]);
        expect(sink.problems[0]!.bytes).toEqual(Buffer.concat([lengthBytes(cap + 1, prefix), Buffer.alloc(cap + 1, 2)]));
      });

      it('waits for the sink: push resolves only after the promise the sink returned', async () => {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: MAX });
        let release!: () => void;
        sink.answer = () => new Promise<void>((resolve) => (release = resolve));
        const waiting = framer.push(stream);
        expect(waiting).toBeInstanceOf(Promise);
        let done = false;
        void waiting!.then(() => (done = true));
        await new Promise(setImmediate);
        expect(done).toBe(false);
        release();
        await waiting;
        expect(done).toBe(true);
        // A chunk that completes no frame asks nothing of the sink.
        expect(framer.push(lengthBytes(3, prefix))).toBeUndefined();
      });
    });
  }

  it('refuses 8-byte lengths past 2^32 and 2^53 without reading them as small', () => {
    for (const over of [2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
      const sink = new RecordingSink('bytes');
      const framer = new LengthFramer(sink, { prefix: 8, maxFrameBytes: 16 });
      framer.push(Buffer.concat([lengthBytes(over, 8), Buffer.from('abc')]));
      expect(sink.problems).toEqual([
        {
          kind: 'over-long',
          reason: `frame length ${over} bytes is over the cap of 16 bytes`,
          number: 1,
          bytes: Buffer.concat([lengthBytes(over, 8), Buffer.from('abc')]),
        },
      ]);
      expect(framer.broken).toBe(true);
    }
  });

  it('allocates nothing for a length over the cap, however large', () => {
    const cases: [LengthPrefix, bigint][] = [
      [4, 2n ** 32n - 1n],
      [8, 2n ** 32n],
      [8, 2n ** 63n],
    ];
    for (const [prefix, over] of cases) {
      for (const split of [false, true]) {
        const sink = new RecordingSink('bytes');
        const framer = new LengthFramer(sink, { prefix, maxFrameBytes: 1024 });
        const head = lengthBytes(over, prefix);
        const before = process.memoryUsage().arrayBuffers;
        if (split) for (const byte of head) framer.push(Buffer.from([byte]));
        else framer.push(head);
        framer.push(Buffer.alloc(100));
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
        expect(sink.problems).toHaveLength(1);
        expect(framer.broken).toBe(true);
      }
    }
  });

  it('assembles a frame cut across chunks in a buffer of its own length', () => {
    const frame = Buffer.alloc(10_000, 'q');
    const stream = encode([frame], 4);
    const sink = new RecordingSink('bytes');
    const framer = new LengthFramer(sink, { prefix: 4, maxFrameBytes: 1 << 20 });
    const before = process.memoryUsage().arrayBuffers;
    framer.push(stream.subarray(0, 4_000));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 10);
    expect(framer.held).toBe(4_000);
    framer.push(stream.subarray(4_000, 8_000));
    framer.push(stream.subarray(8_000));
    const handed = sink.handed[0]![0] as Buffer;
    expect(handed).toEqual(frame);
    expect(handed.buffer.byteLength).toBe(frame.length);
    expect(sink.batches[0]).toMatchObject({ first: 1, end: stream.length });
  });

  it('does not wait for the next chunk to hand over a frame its own chunk completed', () => {
    const sink = new RecordingSink('bytes');
    const framer = new LengthFramer(sink, { prefix: 2, maxFrameBytes: 100 });
    const stream = encode([Buffer.from('abc'), Buffer.from('defg')], 2);
    framer.push(stream.subarray(0, 4));
    expect(sink.numbered()).toEqual([]);
    framer.push(stream.subarray(4, 6));
    expect(sink.numbered()).toEqual([{ number: 1, frame: Buffer.from('abc') }]);
    expect(sink.batches[0]!.end).toBe(5);
    expect(framer.held).toBe(1);
  });

  it('refuses a prefix or a cap it cannot work with', () => {
    const sink = new RecordingSink('bytes');
    expect(() => new LengthFramer(sink, { prefix: 3 as LengthPrefix, maxFrameBytes: 10 })).toThrow(/1, 2, 4 or 8/);
    expect(() => new LengthFramer(sink, { prefix: 4, maxFrameBytes: -1 })).toThrow(/maxFrameBytes/);
    expect(() => new LengthFramer(sink, { prefix: 4, maxFrameBytes: 1.5 })).toThrow(/maxFrameBytes/);
    expect(() => new LengthFramer(sink, { prefix: 4, maxFrameBytes: 2 ** 60 })).toThrow(/maxFrameBytes/);
  });

  it('frames any stream cut anywhere as it was written (property)', () => {
    const cap = 255;
    fc.assert(
      fc.property(
        fc.constantFrom<LengthPrefix>(1, 2, 4, 8),
        fc.array(fc.uint8Array({ maxLength: cap }), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom<'text' | 'bytes'>('text', 'bytes'),
        (prefix, arrays, cutPoints, form) => {
          const frames = arrays.map((a) => Buffer.from(a));
          const stream = encode(frames, prefix);
          const points = [...new Set(cutPoints.map((p) => p % (stream.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...points].map((from, i) => stream.subarray(from, [...points, stream.length][i]));
          const sink = new RecordingSink(form);
          feed(new LengthFramer(sink, { prefix, maxFrameBytes: cap }), sink, chunks, frameEnds(frames, prefix));
          const expected = form === 'text' ? asText(frames) : frames;
          expect(sink.numbered()).toEqual(expected.map((frame, i) => ({ number: i + 1, frame })));
          expect(sink.problems.map((p) => p.number)).toEqual(
            form === 'text' ? expected.flatMap((f, i) => (f === '' && frames[i]!.length > 0 ? [i + 1] : [])) : [],
          );
        },
      ),
    );
  });
});
