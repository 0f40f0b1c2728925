// The ZeroMQ output and input in process, on real sockets over 127.0.0.1:
// partition_by placement and order, batches and their frames, the input
// splitting them, no_drop, and what close() reports per endpoint.
import { endpoint, freePort } from '../e2e/helpers.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Pull, Subscriber } from 'zeromq';
import jsonCodec from '../../src/codecs/json.js';
import nullCodec from '../../src/codecs/null.js';
import type { ErrorRecord } from '../../src/core/errors.js';
import { UsageError } from '../../src/core/errors.js';
import { validateOptions } from '../../src/core/options.js';
import type { Codec, FrameBatch, InputContext, Output, OutputContext } from '../../src/core/plugin.js';
import zeromqInput from '../../src/inputs/zeromq.js';
import { partitionOf } from '../../src/io/partition.js';
import zeromqOutput from '../../src/outputs/zeromq.js';

let json: Codec;
let raw: Codec;
beforeAll(async () => {
  json = await jsonCodec.create({}, {});
  raw = await nullCodec.create({}, {});
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sockets and outputs a test opened: closed after it, whatever happened. */
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

interface Made {
  output: Output;
  errors: ErrorRecord[];
  warnings: string[];
  stop: AbortController;
}

/** The output as the program makes it: options validated and checked, then created. */
async function makeOutput(raw: Record<string, unknown>): Promise<Made> {
  const options = validateOptions('--output ZeroMQ', zeromqOutput.options, raw);
  const problem = zeromqOutput.check?.(options);
  if (problem) throw new UsageError(problem);
  const errors: ErrorRecord[] = [];
  const warnings: string[] = [];
  const stop = new AbortController();
  const context: OutputContext = {
    reportError: (record) => errors.push(record),
    warn: (line) => warnings.push(line),
    stopping: stop.signal,
    destinationClosed: () => undefined,
  };
  const output = await zeromqOutput.create(options, context);
  let closed = false;
  const close = output.close.bind(output);
  output.close = () => {
    closed = true;
    return close();
  };
  cleanup.push(() => (closed ? undefined : close().catch(() => undefined)));
  return { output, errors, warnings, stop };
}

/** A PULL bound on a free port that keeps what it receives, frame by frame. */
async function receiver(): Promise<{ address: string; frames: string[]; socket: Pull }> {
  const address = endpoint(await freePort());
  const socket = new Pull({ linger: 0 });
  await socket.bind(address);
  const frames: string[] = [];
  void (async () => {
    try {
      for await (const [frame] of socket) frames.push(frame!.toString());
    } catch {
      // Closed.
    }
  })();
  cleanup.push(() => socket.close());
  return { address, frames, socket };
}

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !condition(); await sleep(5)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** Messages and their JSON frames, as the chain hands them to write(). */
function encoded(messages: object[]): [string[], object[]] {
  return [messages.map((m) => JSON.stringify(m)), messages];
}

describe('ZeroMQ output partition_by', () => {
  it('sends every message of a key to one endpoint, the one jump hash picks, in order', async () => {
    const peers = [await receiver(), await receiver(), await receiver()];
    const { output, errors } = await makeOutput({ connect: peers.map((p) => p.address), socket_type: 'PUSH', partition_by: 'origin.file' });
    expect(output.passThrough).toBeUndefined();
    const files = Array.from({ length: 30 }, (_, i) => `/var/log/app-${i}.log`);
    const messages = Array.from({ length: 3000 }, (_, seq) => ({ seq, origin: { file: files[seq % files.length]!, line: seq } }));
    for (let from = 0; from < messages.length; from += 512) await output.write(...encoded(messages.slice(from, from + 512)));
    await output.close();
    await until(() => peers.reduce((sum, p) => sum + p.frames.length, 0) === messages.length, 'every message');
    expect(errors).toEqual([]);
    for (const [index, peer] of peers.entries()) {
      const got = peer.frames.map((f) => JSON.parse(f) as (typeof messages)[number]);
      for (const message of got) expect(partitionOf(message.origin.file, peers.length), message.origin.file).toBe(index);
      for (const file of files) {
        const seqs = got.filter((m) => m.origin.file === file).map((m) => m.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      }
    }
    expect(peers.every((p) => p.frames.length > 0)).toBe(true);
  });

  it('a key of several fields joins their texts; a message without the key goes to the error output, or to the first endpoint', async () => {
    const peers = [await receiver(), await receiver()];
    const made = await makeOutput({ connect: peers.map((p) => p.address), socket_type: 'PUSH', partition_by: ['host', 'n'] });
    await made.output.write(...encoded([{ host: 'a', n: 1 }, { host: 'a' }, { n: 2 }, { host: 'b', n: { deep: [1] } }]));
    await made.output.close();
    expect(made.errors).toEqual([
      { error: 'output', reason: "field 'n' missing for partition_by", source: 'output:zeromq', frame: '{"host":"a"}' },
      { error: 'output', reason: "field 'host' missing for partition_by", source: 'output:zeromq', frame: '{"n":2}' },
    ]);
    await until(() => peers[0]!.frames.length + peers[1]!.frames.length === 2, 'two messages');
    expect(peers[partitionOf('a\u00001', 2)]!.frames).toContain('{"host":"a","n":1}');
    expect(peers[partitionOf('b\u0000{"deep":[1]}', 2)]!.frames).toContain('{"host":"b","n":{"deep":[1]}}');

    const first = [await receiver(), await receiver()];
    const lenient = await makeOutput({ connect: first.map((p) => p.address), socket_type: 'PUSH', partition_by: 'host', partition_missing: 'first' });
    await lenient.output.write(...encoded([{ m: 1 }, { m: 2 }]));
    await lenient.output.close();
    expect(lenient.errors).toEqual([]);
    await until(() => first[0]!.frames.length === 2, 'both at the first endpoint');
    expect(first[1]!.frames).toEqual([]);
  });

  it('--stats counts per endpoint; an endpoint without a peer holds its messages and close() counts them per endpoint', async () => {
    const live = await receiver();
    const dead = endpoint(await freePort());
    const { output } = await makeOutput({ connect: [live.address, dead], socket_type: 'PUSH', partition_by: 'k', linger: 100 });
    // Keys placed on each of the two endpoints.
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    const toLive = keys.filter((k) => partitionOf(k, 2) === 0);
    const toDead = keys.filter((k) => partitionOf(k, 2) === 1);
    await output.write(...encoded(keys.map((k) => ({ k }))));
    await until(() => live.frames.length === toLive.length, 'the live endpoint');
    expect(output.stats?.()).toBe(`endpoints=${live.address}=${toLive.length},${dead}=0 waiting=${dead}=${toDead.length}`);
    await expect(output.close()).rejects.toThrow(
      `zeromq output: ${toDead.length} messages could not be delivered within linger (100 ms): ${toDead.length} for ${dead} (no peer connected); start the missing receivers, or raise linger`,
    );
  });

  it('past the backlog limit of one endpoint the writer waits, and goes on once its peer comes', async () => {
    const port = await freePort();
    const late = endpoint(port);
    const live = await receiver();
    const { output } = await makeOutput({ connect: [live.address, late], socket_type: 'PUSH', partition_by: 'k', socket_hwm: 10 });
    const lateKey = Array.from({ length: 50 }, (_, i) => `k${i}`).find((k) => partitionOf(k, 2) === 1)!;
    const messages = Array.from({ length: 3000 }, (_, seq) => ({ k: lateKey, seq }));
    let done = false;
    const writing = (async () => {
      for (let from = 0; from < messages.length; from += 500) await output.write(...encoded(messages.slice(from, from + 500)));
      done = true;
    })();
    await sleep(200);
    expect(done).toBe(false);
    expect(live.frames).toEqual([]);
    const socket = new Pull({ linger: 0 });
    cleanup.push(() => socket.close());
    await socket.bind(late);
    const got: number[] = [];
    while (got.length < messages.length) got.push((JSON.parse(String((await socket.receive())[0])) as { seq: number }).seq);
    await writing;
    await output.close();
    expect(got).toEqual(messages.map((m) => m.seq));
  });

  it('is refused where it cannot work', async () => {
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', partition_by: 'k' })).rejects.toThrow(/partition_by needs socket_type "PUSH"/);
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', socket_type: 'PUSH', no_drop: true })).rejects.toThrow(/no_drop applies to PUB sockets only/);
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', socket_type: 'PUSH', partition_by: '' })).rejects.toThrow(/empty name/);
  });
});

describe('ZeroMQ output batch', () => {
  it('joins messages, each ended by LF, into frames of max_messages, and sends a partial one after max_delay', async () => {
    const peer = await receiver();
    const { output } = await makeOutput({ connect: peer.address, socket_type: 'PUSH', batch: { max_messages: 3, max_delay: '50ms' } });
    await output.write(['1', '2', '3', '4', '5', '6', '7'], []);
    await until(() => peer.frames.length === 2, 'two full frames');
    expect(peer.frames).toEqual(['1\n2\n3\n', '4\n5\n6\n']);
    await until(() => peer.frames.length === 3, 'the partial frame after max_delay');
    expect(peer.frames[2]).toBe('7\n');
    await output.close();
  });

  it('takes lines that pass through as bytes and cuts them into batches without a copy per message', async () => {
    const peer = await receiver();
    const { output } = await makeOutput({ connect: peer.address, socket_type: 'PUSH', batch: { max_messages: 3, max_bytes: 12 } });
    expect(output.passThrough).toBe('lines');
    // The reader fills the same buffer again once writeLines returns.
    const reused = Buffer.alloc(64);
    const lines = (text: string) => {
      reused.fill('x');
      return reused.subarray(0, reused.write(text));
    };
    await output.writeLines!(lines('1\n2\n3\n4\n5\n6\n7\n'), 7);
    await output.writeLines!(lines('8\n9\n'), 2);
    await output.writeLines!(lines('aaaa\nbbbb\ncccc\nddddddddddddddd\ne\n'), 5);
    reused.fill('x');
    await output.close();
    await until(() => peer.frames.length === 7, 'seven frames');
    expect(peer.frames).toEqual(['1\n2\n3\n', '4\n5\n6\n', '7\n8\n9\n', 'aaaa\nbbbb\n', 'cccc\n', 'ddddddddddddddd\n', 'e\n']);
  });

  it('cuts frames at max_bytes; a message larger than that goes alone; raw bytes are joined as bytes', async () => {
    const peer = await receiver();
    const { output } = await makeOutput({ connect: peer.address, socket_type: 'PUSH', batch: { max_bytes: 10 } });
    await output.write(['aaaa', 'bbbb', 'cccc', 'dddddddddddddd', 'é', Buffer.from('ff'), 'g'], []);
    await output.close();
    await until(() => peer.frames.length === 4, 'four frames');
    // 'aaaa\nbbbb\n' is 10 bytes.
    expect(peer.frames).toEqual(['aaaa\nbbbb\n', 'cccc\n', 'dddddddddddddd\n', 'é\nff\ng\n']);
  });

  it('settled() sends a partial batch at once; close() sends it too; a message holding a LF goes to the error output', async () => {
    const peer = await receiver();
    const { output, errors } = await makeOutput({ connect: peer.address, socket_type: 'PUSH', batch: { max_delay: '1h' } });
    await output.write(['{"a":1}', 'two\nlines', '{"a":2}'], []);
    await output.settled?.();
    await until(() => peer.frames.length === 1, 'the frame settled() sent');
    expect(peer.frames).toEqual(['{"a":1}\n{"a":2}\n']);
    expect(errors).toEqual([expect.objectContaining({ error: 'output', source: 'output:zeromq', frame: 'two\nlines' })]);
    expect(errors[0]!.reason).toMatch(/line feed/);
    await output.write(['{"a":3}'], []);
    await output.close();
    await until(() => peer.frames.length === 2, 'the frame close() sent');
    expect(peer.frames[1]).toBe('{"a":3}\n');
  });

  it('a stop (SIGTERM) sends the partial batch without waiting for max_delay', async () => {
    const peer = await receiver();
    const { output, stop } = await makeOutput({ connect: peer.address, socket_type: 'PUSH', batch: { max_delay: '1h' } });
    await output.write(['{"a":1}'], []);
    await sleep(50);
    expect(peer.frames).toEqual([]);
    stop.abort();
    await until(() => peer.frames.length === 1, 'the partial batch');
    await output.close();
  });

  it('counts undelivered messages, not frames, at close', async () => {
    const { output } = await makeOutput({ connect: endpoint(await freePort()), socket_type: 'PUSH', batch: { max_messages: 4 }, linger: 50 });
    await output.write(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'], []);
    await expect(output.close()).rejects.toThrow(/^zeromq output: 10 messages could not be delivered within linger \(50 ms\): no peer is connected/);
  });

  it('a bad batch option is a usage error naming it', async () => {
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', batch: { max_message: 3 } })).rejects.toThrow(
      "batch: unknown option 'max_message' (did you mean 'max_messages'?)",
    );
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', batch: { max_delay: '5 ms' } })).rejects.toThrow(/batch: option 'max_delay' must be a duration/);
    await expect(makeOutput({ connect: 'tcp://127.0.0.1:5555', batch: 'yes' })).rejects.toThrow(/batch must be true, false or an object/);
  });
});

describe('ZeroMQ output no_drop', () => {
  it('a PUB waits for a subscriber that does not read instead of dropping, then delivers everything in order', async () => {
    const address = endpoint(await freePort());
    const { output } = await makeOutput({ socket_bind: address, no_drop: true, socket_hwm: 200 });
    const sub = new Subscriber({ receiveHighWaterMark: 200, linger: 0 });
    cleanup.push(() => sub.close());
    sub.subscribe('');
    sub.connect(address);
    // 20 MB: more than the kernel's socket buffers and the output's backlog (2048 messages) hold together.
    const total = 5000;
    const pad = '.'.repeat(4000);
    let written = 0;
    const writing = (async () => {
      for (let from = 0; from < total; from += 100) {
        await output.write(Array.from({ length: 100 }, (_, i) => `${from + i} ${pad}`), []);
        written = from + 100;
      }
    })();
    // Nothing is read: the PUB is held at its high-water mark plus what the sockets buffer.
    await sleep(300);
    expect(written).toBeLessThan(total);
    // A message dropped would leave this waiting: the receive times out and the test fails.
    sub.receiveTimeout = 5000;
    const got: number[] = [];
    while (got.length < total) got.push(Number.parseInt(String((await sub.receive())[0]), 10));
    await writing;
    await output.close();
    expect(got).toEqual(Array.from({ length: total }, (_, i) => i));
  });
});

describe('ZeroMQ input split_lines', () => {
  /**
   * The input as the program makes it (options validated), running with the
   * test's `emit`, `sink` and `decoder`; unless `cleanUp` is false, stopped
   * after the test.
   */
  async function runInput(options: Record<string, unknown>, parts: Pick<InputContext, 'emit' | 'sink' | 'decoder'>, cleanUp = true) {
    const validated = validateOptions('--input ZeroMQ', zeromqInput.options, options);
    const stop = new AbortController();
    const context = { reportError: () => undefined, warn: () => undefined, stopping: stop.signal, ...parts } satisfies InputContext;
    const input = await zeromqInput.create(validated, context);
    const running = input.run();
    if (cleanUp) {
      cleanup.push(async () => {
        stop.abort();
        await running;
      });
    }
    return { stop, running };
  }

  /** The input as the program makes it, its batches kept. */
  async function makeInput(options: Record<string, unknown>, decoder: Codec) {
    const batches: FrameBatch[] = [];
    const { stop, running } = await runInput(options, {
      emit: (batch: FrameBatch) => {
        batches.push({ ...batch, frames: batch.frames.map((f) => (typeof f === 'string' ? f : Buffer.from(f).toString())) });
      },
      // No pass-through here: every frame is handed on to be decoded.
      sink: () => ({ form: 'text', frames: () => undefined, problem: () => undefined }),
      decoder,
    });
    const messages = () => batches.flatMap((b) => b.frames.map((frame, i) => `${b.first + i}:${String(frame)}`));
    return { messages, stop, running };
  }

  it('splits batched frames at LF with the JSON decoder, numbering each message; not with Null unless asked', async () => {
    const { Push } = await import('zeromq');
    for (const [decoder, options, expected] of [
      [json, {}, ['1:{"a":1}', '2:{"a":2}', '3:{"a":3}', '4:{"b":1}']],
      [raw, {}, ['1:{"a":1}\n{"a":2}\n\n{"a":3}\n', '2:{"b":1}']],
      [raw, { split_lines: true }, ['1:{"a":1}', '2:{"a":2}', '3:{"a":3}', '4:{"b":1}']],
      [json, { split_lines: false }, ['1:{"a":1}\n{"a":2}\n\n{"a":3}\n', '2:{"b":1}']],
    ] as const) {
      const address = endpoint(await freePort());
      const input = await makeInput({ socket_bind: address, socket_type: 'PULL', ...options }, decoder);
      const push = new Push({ linger: 1000 });
      push.connect(address);
      await push.send('{"a":1}\n{"a":2}\n\n{"a":3}\n');
      await push.send('{"b":1}');
      push.close();
      await until(() => input.messages().some((m) => m.endsWith('{"b":1}')), 'the last message');
      expect(input.messages(), JSON.stringify(options)).toEqual(expected);
      input.stop.abort();
      await input.running;
    }
  });

  it('with pass-through, a frame of lines that all pass goes on whole, as lines; the others are split, in order', async () => {
    const { Push } = await import('zeromq');
    const { isVerbatimJson } = await import('../../src/io/json-verbatim.js');
    const address = endpoint(await freePort());
    const seen: string[] = [];
    await runInput({ socket_bind: address, socket_type: 'PULL' }, {
      emit: (batch: FrameBatch) => {
        seen.push(...batch.frames.map((f, i) => `frame ${batch.first + i}: ${String(f)}`));
      },
      sink: () => ({
        form: 'text' as const,
        frames: () => undefined,
        problem: () => undefined,
        lines: (bytes: Buffer, count: number) => {
          seen.push(`${count} lines: ${bytes.toString()}`);
        },
        passes: isVerbatimJson,
      }),
      decoder: json,
    });
    const push = new Push({ linger: 1000 });
    push.connect(address);
    for (const frame of ['{"a":1}\n{"a":2}\n', '{"b":1}', '{"c": 1}\n{"c":2}\n', '{"d":1}\n{"d":2}', '{"e":1}\n']) await push.send(frame);
    push.close();
    await until(() => seen.some((s) => s.includes('"e"')), 'the last frame');
    expect(seen).toEqual([
      '2 lines: {"a":1}\n{"a":2}\n',
      'frame 3: {"b":1}',
      // Not in the form JSON.stringify writes: decoded, then encoded.
      'frame 4: {"c": 1}',
      'frame 5: {"c":2}',
      // No LF at the end: split.
      'frame 6: {"d":1}',
      'frame 7: {"d":2}',
      '1 lines: {"e":1}\n',
    ]);
  });

  it('hands big batches on in chain batches of about 512 messages', async () => {
    const { Push } = await import('zeromq');
    const address = endpoint(await freePort());
    const sizes: number[] = [];
    let seen = 0;
    let release: (() => void) | undefined;
    const { stop, running } = await runInput(
      { socket_bind: address, socket_type: 'PULL' },
      {
        emit: (batch: FrameBatch) => {
          sizes.push(batch.frames.length);
          seen += batch.frames.length;
          // The first batch waits, so that the others queue up meanwhile.
          if (sizes.length === 1) return new Promise<void>((resolve) => (release = resolve));
        },
        sink: () => ({ form: 'text', frames: () => undefined, problem: () => undefined }),
        decoder: json,
      },
      // This test stops the input itself, once the first batch is let go.
      false,
    );
    const push = new Push({ linger: 1000 });
    push.connect(address);
    const frame = Array.from({ length: 256 }, (_, i) => `{"i":${i}}`).join('\n');
    for (let i = 0; i < 40; i++) await push.send(frame);
    push.close();
    await until(() => release !== undefined, 'the first batch');
    await sleep(100);
    release!();
    await until(() => seen === 40 * 256, 'every message');
    stop.abort();
    await running;
    expect(Math.max(...sizes)).toBeLessThanOrEqual(512 + 256);
  });
});
