import { describe, expect, it } from 'vitest';
import { DatagramFramer } from '../../src/io/datagram-framer.js';
import { PROBLEM_BYTES } from '../../src/io/length-framer.js';
import { RecordingSink } from './recording-sink.js';

const binary = Buffer.from([0x7b, 0xff, 0x00, 0xc3]);

describe('DatagramFramer', () => {
  it('hands each datagram as one numbered frame, the datagram itself', () => {
    const sink = new RecordingSink('bytes');
    const framer = new DatagramFramer(sink, { maxFrameBytes: 16 });
    const datagrams = [Buffer.from('{"a":1}\n{"b":2}'), Buffer.alloc(0), binary, Buffer.alloc(16, 'x')];
    for (const datagram of datagrams) expect(framer.push(datagram)).toBeUndefined();
    framer.end();
    expect(sink.batches).toEqual([
      { frames: [datagrams[0]], first: 1, end: 15 },
      { frames: [datagrams[1]], first: 2, end: 15 },
      { frames: [binary], first: 3, end: 19 },
      { frames: [datagrams[3]], first: 4, end: 35 },
    ]);
    sink.handed.forEach((frames, i) => expect(frames[0]).toBe(datagrams[i]));
    expect(sink.problems).toEqual([]);
    expect(framer.held).toBe(0);
    expect(framer.broken).toBe(false);
  });

  it('reports a datagram over the cap, skips it and goes on', () => {
    const sink = new RecordingSink('bytes');
    const framer = new DatagramFramer(sink, { maxFrameBytes: 8 });
    const big = Buffer.alloc(10_000, 'y');
    framer.push(Buffer.from('one'));
    expect(framer.push(big)).toBeUndefined();
    framer.push(Buffer.alloc(9, 'z'));
    framer.push(Buffer.from('four'));
    expect(sink.numbered()).toEqual([
      { number: 1, frame: Buffer.from('one') },
      { number: 4, frame: Buffer.from('four') },
    ]);
    expect(sink.batches[1]!.end).toBe(3 + 10_000 + 9 + 4);
    expect(sink.problems).toEqual([
      { kind: 'over-long', reason: 'datagram of 10000 bytes is over the cap of 8 bytes', number: 2, bytes: big.subarray(0, PROBLEM_BYTES) },
      { kind: 'over-long', reason: 'datagram of 9 bytes is over the cap of 8 bytes', number: 3, bytes: Buffer.alloc(9, 'z') },
    ]);
    expect(framer.broken).toBe(false);
    expect(framer.held).toBe(0);
  });

  it('hands text as strings; what is not UTF-8 is reported and stands as ""', () => {
    const sink = new RecordingSink('text');
    const framer = new DatagramFramer(sink, { maxFrameBytes: 64 });
    framer.push(Buffer.from('héllo €𝄞'));
    framer.push(binary);
    framer.push(Buffer.from('{"ok":true}'));
    framer.push(Buffer.alloc(0));
    expect(sink.numbered()).toEqual([
      { number: 1, frame: 'héllo €𝄞' },
      { number: 2, frame: '' },
      { number: 3, frame: '{"ok":true}' },
      { number: 4, frame: '' },
    ]);
    expect(sink.problems).toEqual([{ kind: 'encoding', reason: 'datagram is not valid UTF-8', number: 2, bytes: binary }]);
  });

  it('takes a datagram of exactly the cap, and an empty one under a cap of 0', () => {
    const sink = new RecordingSink('bytes');
    new DatagramFramer(sink, { maxFrameBytes: 5 }).push(Buffer.from('12345'));
    const empty = new RecordingSink('bytes');
    const strict = new DatagramFramer(empty, { maxFrameBytes: 0 });
    strict.push(Buffer.alloc(0));
    strict.push(Buffer.from('a'));
    expect(sink.numbered()).toEqual([{ number: 1, frame: Buffer.from('12345') }]);
    expect(empty.numbered()).toEqual([{ number: 1, frame: Buffer.alloc(0) }]);
    expect(empty.problems.map((p) => p.number)).toEqual([2]);
  });

  it('waits for the sink: push resolves only after the promise the sink returned', async () => {
    const sink = new RecordingSink('bytes');
    const framer = new DatagramFramer(sink, { maxFrameBytes: 64 });
    let release!: () => void;
    sink.answer = () => new Promise<void>((resolve) => (release = resolve));
    const waiting = framer.push(Buffer.from('x'));
    expect(waiting).toBeInstanceOf(Promise);
    let done = false;
    void waiting!.then(() => (done = true));
    await new Promise(setImmediate);
    expect(done).toBe(false);
    release();
    await waiting;
    expect(done).toBe(true);
  });

  it('ends without a word', () => {
    const sink = new RecordingSink('bytes');
    const framer = new DatagramFramer(sink, { maxFrameBytes: 64 });
    framer.push(Buffer.from('x'));
    expect(framer.end()).toBeUndefined();
    expect(sink.batches).toHaveLength(1);
    expect(sink.problems).toEqual([]);
  });

  it('refuses a cap it cannot work with', () => {
    const sink = new RecordingSink('bytes');
    expect(() => new DatagramFramer(sink, { maxFrameBytes: -1 })).toThrow(/maxFrameBytes/);
    expect(() => new DatagramFramer(sink, { maxFrameBytes: NaN })).toThrow(/maxFrameBytes/);
  });
});
