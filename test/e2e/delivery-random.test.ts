// Nothing lost on bad input, counted at both ends: random mixes of lines through
// STDIN -> PUSH -> PULL -> STDOUT, and random binary and multi-part frames from a
// bare zeromq.js peer into our PULL. At each process the --stats end figures must
// match what the test counted: out + dropped + errors = in, order kept.
import { isUtf8 } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Push, XPublisher } from 'zeromq';
import {
  endpoint,
  errorRecords,
  lastStats,
  launch,
  otherLines,
  terminate,
  zmqInput,
  zmqOutput,
  type ErrorRecordSeen,
  type Stats,
} from './delivery-helpers.js';
import { freePort, tempDir } from './helpers.js';
import { badLine as bad, buildLines, bytesLine, CR, emptyLine as empty, goodLine, LF, longLine } from './random-lines.js';

const dir = tempDir();
// Drops messages marked drop; wraps the rest so that a decoded null passes on as a message.
const dropFilter = join(dir, 'drop.mjs');
writeFileSync(dropFilter, 'export default (m) => (m !== null && typeof m === "object" && m.drop === true ? undefined : [m]);\n');

/** The STDIN input's default max_line_length. */
const MAX_LINE = 1_048_576;

// ---------------------------------------------------------------------------
// STDIN -> PUSH -> PULL -> STDOUT

// Now and then a message of 200 KB; long lines, rarely one past max_line_length (an over-long
// record at the first process).
const good = goodLine(200_000);
const bytes = bytesLine(true);
const long = longLine(MAX_LINE);

const stdoutLines = (stdout: Buffer) => {
  const text = stdout.toString('utf8');
  return text === '' ? [] : text.slice(0, -1).split('\n');
};

/** Every error record agrees with the stats line beside it, and nothing else was printed. */
function checkStderr(stderr: string, stats: Stats, where: string): ErrorRecordSeen[] {
  const records = errorRecords(stderr);
  expect(records, `${where}: error records against errors=`).toHaveLength(stats.errors);
  expect(otherLines(stderr), `${where}: other lines on stderr`).toEqual([]);
  return records;
}

/**
 * Runs STDIN -> PUSH (one process) -> PULL -> STDOUT (another) on `input` and
 * returns both processes' end figures, stderr, and the final stdout.
 */
async function throughPushPull(input: Buffer, firstArgs: string[], secondArgs: string[]) {
  const port = await freePort();
  // A periodic stats line is how the test learns the PULL has everything the PUSH sent.
  const pull = launch([...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }), ...secondArgs, '--stats', '0.05']);
  // A long linger: on a busy machine the PULL may take a while to bind; the PUSH waits for it.
  const push = launch([...zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', linger: 30_000 }), ...firstArgs, '--stats', '60']);
  push.child.stdin!.end(input);
  const pushed = await push.done;
  expect(pushed.code, push.stderr).toBe(0);
  const pushStats = lastStats(push.stderr)!;
  await pull.waitForStats((s) => s.in === pushStats.out, `in=${pushStats.out} at the PULL`);
  const pulled = await terminate(pull);
  expect(pulled.code, pull.stderr).toBe(0);
  return { pushStats, pushStderr: push.stderr, pullStats: lastStats(pull.stderr)!, pullStderr: pull.stderr, stdout: pull.stdout };
}

describe.concurrent('random lines through STDIN -> PUSH -> PULL -> STDOUT', () => {
  it('JSON with a filter that drops some at the far end: lines in = out + dropped + errors at each process, good order kept', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, good, bad, empty, bytes, long), { minLength: 1, maxLength: 50 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents, goods } = buildLines(lineList, lastWithoutLF);
        const nonEmpty = contents.filter((c) => c.length > 0).length;
        const { pushStats, pushStderr, pullStats, pullStderr, stdout } = await throughPushPull(input, [], ['--filter', dropFilter]);
        // First process: every non-empty line is read; what it cannot decode is an error record there.
        expect(pushStats.in).toBe(nonEmpty);
        expect(pushStats.out + pushStats.errors).toBe(pushStats.in);
        expect(pushStats.dropped).toBe(0);
        checkStderr(pushStderr, pushStats, 'PUSH');
        // Second process: what the first sent, nothing lost on the way, nothing it cannot decode.
        expect(pullStats.in).toBe(pushStats.out);
        expect(pullStats.errors).toBe(0);
        checkStderr(pullStderr, pullStats, 'PULL');
        const out = stdoutLines(stdout);
        expect(out).toHaveLength(pullStats.out);
        const dropped = goods.filter((g) => g.drop).length;
        expect(pullStats.dropped).toBe(dropped);
        // End to end: every line accounted for, the good ones in their order.
        expect(out.length + pullStats.dropped + pushStats.errors + pullStats.errors).toBe(nonEmpty);
        const ids = out.map((l) => JSON.parse(l) as unknown).flatMap((m) => (m !== null && typeof m === 'object' && 'id' in m ? [(m as { id: number }).id] : []));
        expect(ids).toEqual(goods.filter((g) => !g.drop).map((g) => g.id));
      }),
      { numRuns: 10, endOnFailure: true },
    );
  });

  it('Null codecs: every non-empty line comes out byte for byte, in order, invalid UTF-8 included; only over-long lines are error records', async () => {
    const raw = ['--decoder', 'Null', '--encoder', 'Null'];
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(good, bad, empty, bytes, bytes, long), { minLength: 1, maxLength: 50 }), fc.boolean(), async (lineList, lastWithoutLF) => {
        const { input, contents } = buildLines(lineList, lastWithoutLF);
        const nonEmpty = contents.filter((c) => c.length > 0);
        const passing = nonEmpty.filter((c) => c.length <= MAX_LINE);
        const { pushStats, pushStderr, pullStats, pullStderr, stdout } = await throughPushPull(input, raw, raw);
        expect(pushStats).toEqual({ in: nonEmpty.length, out: passing.length, dropped: 0, errors: nonEmpty.length - passing.length });
        expect(checkStderr(pushStderr, pushStats, 'PUSH').map((r) => r.error)).toEqual(Array(pushStats.errors).fill('over-long'));
        expect(pullStats).toEqual({ in: passing.length, out: passing.length, dropped: 0, errors: 0 });
        checkStderr(pullStderr, pullStats, 'PULL');
        const expected = Buffer.concat(passing.flatMap((c) => [c, Buffer.from('\n')]));
        expect(stdout.equals(expected), `stdout ${JSON.stringify(stdout.toString('latin1').slice(0, 300))}`).toBe(true);
      }),
      { numRuns: 10, endOnFailure: true },
    );
  });
});

// ---------------------------------------------------------------------------
// Frames from a bare zeromq.js peer

/** Any one part of a ZeroMQ message, good or bad. */
const part = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v))),
  // JSON as a person writes it: spaces, LF inside, a CR at the end.
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v, null, 1))),
  fc.jsonValue({ maxDepth: 1 }).map((v) => Buffer.from(`${JSON.stringify(v)}\r`)),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  // Not UTF-8, and a CR at the end: the CR is part of the frame, not a line ending.
  fc.uint8Array({ maxLength: 10 }).map((b) => Buffer.concat([b, Buffer.from([0xff, CR])])),
  fc.constant(Buffer.alloc(0)),
  // Past the 1024 characters an error record keeps of a frame.
  fc.integer({ min: 1000, max: 3000 }).map((n) => Buffer.from(`not json ${'z'.repeat(n)}`)),
  fc.integer({ min: 800, max: 3000 }).map((n) => Buffer.alloc(n, 0xfe)),
);
/** One message: 0 to 2 leading parts (a topic, say), then the frame. */
const message = fc.tuple(fc.array(part, { maxLength: 2 }), part).map(([head, last]) => [...head, last]);

const cut = (text: string) => text.slice(0, 1024);
const frameNumber = (record: ErrorRecordSeen) => Number(record.source.slice(record.source.lastIndexOf(':') + 1));
const byFrameNumber = (a: ErrorRecordSeen, b: ErrorRecordSeen) => frameNumber(a) - frameNumber(b);

/**
 * What the contract says becomes of each frame with the JSON codecs: an empty
 * one is skipped like an empty line; one not valid UTF-8 is an encoding record
 * with a base64 copy; one that is not JSON a decode record with a text copy;
 * the others go out as compact JSON, in order. A frame holding LFs is a batch:
 * each non-empty part between them is a message of its own, numbered in turn.
 */
function expectedWithJson(messages: Buffer[][]) {
  const out: string[] = [];
  const errors: Array<Omit<ErrorRecordSeen, 'reason'> & { reason?: string }> = [];
  let nonEmpty = 0;
  let number = 0;
  const frames = messages.flatMap((parts) => {
    const frame = parts[parts.length - 1]!;
    if (!frame.includes(LF)) return [frame];
    const pieces: Buffer[] = [];
    for (let start = 0; start <= frame.length; ) {
      let end = frame.indexOf(LF, start);
      if (end < 0) end = frame.length;
      if (end > start) pieces.push(frame.subarray(start, end));
      start = end + 1;
    }
    return pieces;
  });
  frames.forEach((frame) => {
    const source = `zeromq:${++number}`;
    if (frame.length === 0) return;
    nonEmpty++;
    if (!isUtf8(frame)) {
      errors.push({ error: 'encoding', reason: 'frame is not valid UTF-8', source, frame: cut(frame.toString('base64')), encoding: 'base64' });
      return;
    }
    const text = frame.toString('utf8');
    try {
      out.push(JSON.stringify(JSON.parse(text)));
    } catch {
      errors.push({ error: 'decode', source, frame: cut(text) });
    }
  });
  return { out, errors, nonEmpty };
}

/** Sends `messages` from a bare PUSH (or PUB) to our input bound on `port`, then waits until it has read them all. */
async function fromBarePeer(messages: Buffer[][], inputArgs: string[], nonEmpty: number, socketType: 'PULL' | 'SUB' = 'PULL') {
  const port = await freePort();
  const input = launch([...zmqInput({ socket_bind: endpoint(port), socket_type: socketType }), ...inputArgs, '--stats', '0.05']);
  const peer = socketType === 'PULL' ? new Push({ sendHighWaterMark: 0 }) : new XPublisher({ sendHighWaterMark: 0 });
  peer.connect(endpoint(port));
  try {
    if (peer instanceof XPublisher) {
      // The subscription arriving says the SUB is connected; a PUB sends nothing to a peer before that.
      peer.receiveTimeout = 20_000;
      await peer.receive();
    }
    // Queued at once (no high-water mark), delivered as soon as the input is bound and connected.
    for (const parts of messages) await peer.send(parts);
    await input.waitForStats((s) => s.in === nonEmpty, `in=${nonEmpty} at our ${socketType}`);
  } finally {
    peer.linger = 0;
    peer.close();
  }
  const finished = await terminate(input);
  expect(finished.code, input.stderr).toBe(0);
  return { stats: lastStats(input.stderr)!, stderr: input.stderr, stdout: input.stdout };
}

describe.concurrent('frames from a bare zeromq.js peer', () => {
  it('JSON codecs: random binary and multi-part messages; out + errors = non-empty frames in, each bad one with a readable copy', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (messages) => {
        const expected = expectedWithJson(messages);
        const { stats, stderr, stdout } = await fromBarePeer(messages, [], expected.nonEmpty);
        expect(stats).toEqual({ in: expected.nonEmpty, out: expected.out.length, dropped: 0, errors: expected.errors.length });
        expect(stdoutLines(stdout)).toEqual(expected.out);
        // Records name their frame; an encoding record (found as the input reads) may come before
        // the decode record of an earlier frame of the same batch (found as the chain decodes).
        const records = checkStderr(stderr, stats, 'PULL').sort(byFrameNumber);
        // The reason of a decode record is JSON.parse's message: present, not compared.
        expect(records).toEqual(expected.errors.map((r) => (r.error === 'decode' ? { ...r, reason: expect.any(String) } : r)));
      }),
      { numRuns: 10, endOnFailure: true },
    );
  });

  it('Null codecs: every non-empty frame comes out byte for byte with a LF, invalid UTF-8 included', async () => {
    const raw = ['--decoder', 'Null', '--encoder', 'Null'];
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 40 }), async (messages) => {
        const frames = messages.map((parts) => parts[parts.length - 1]!).filter((f) => f.length > 0);
        // A frame with a LF inside is text with a LF in it: it can only be written out as such when it is text.
        const writable = frames.filter((f) => isUtf8(f) || !f.includes(LF));
        const { stats, stderr, stdout } = await fromBarePeer(messages, raw, frames.length);
        expect(stats).toEqual({ in: frames.length, out: writable.length, dropped: 0, errors: frames.length - writable.length });
        const records = checkStderr(stderr, stats, 'PULL');
        expect(records.map((r) => [r.error, r.encoding])).toEqual(Array(records.length).fill(['encoding', 'base64']));
        const expectedBytes = Buffer.concat(writable.flatMap((f) => [f, Buffer.from('\n')]));
        expect(stdout.equals(expectedBytes), `stdout ${JSON.stringify(stdout.toString('latin1').slice(0, 300))}`).toBe(true);
      }),
      { numRuns: 10, endOnFailure: true },
    );
  });

  it('a PUB peer with topics into our SUB: the last part is the frame, bad frames are records with a readable copy', async () => {
    const messages = [
      ['logs', '{"n":1}'],
      ['logs', 'not json \u0001\t"quoted"'],
      ['logs', 'extra', '{"n":2}'],
      ['logs', Buffer.from([0xc3, 0x28, 0x41])],
      ['logs', ''],
      ['logs', '{"n":3}'],
    ].map((parts) => parts.map((p) => Buffer.from(p)));
    const { stats, stderr, stdout } = await fromBarePeer(messages, [], 5, 'SUB');
    expect(stats).toEqual({ in: 5, out: 3, dropped: 0, errors: 2 });
    expect(stdoutLines(stdout)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    // Control characters stay readable: the record is JSON, so they come escaped.
    expect(stderr).toContain('"frame":"not json \\u0001\\t\\"quoted\\""');
    expect(checkStderr(stderr, stats, 'SUB')).toEqual([
      { error: 'decode', reason: expect.any(String), source: 'zeromq:2', frame: 'not json \u0001\t"quoted"' },
      { error: 'encoding', reason: 'frame is not valid UTF-8', source: 'zeromq:4', frame: Buffer.from([0xc3, 0x28, 0x41]).toString('base64'), encoding: 'base64' },
    ]);
  });
});
