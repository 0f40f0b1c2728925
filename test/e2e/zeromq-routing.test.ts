// Keyed routing, no_drop and batches through the real binary: partition_by over
// several workers (a worker down, a worker that never comes), a PUB -> SUB/PUSH
// distributor that must not drop, batched frames in every combination, and the
// distributed multi-line design (File readers -> Parse -> Multiline -> writer).
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/io/partition.js';
import { endpoint, filterFile, freePort, ndjson, range, records, run, sleep, SPIN_FILTER, stop, tempDir, tracked, until, zmqInput, zmqOutput } from './helpers.js';

const dir = tempDir();
/** The last --stats line a process printed. */
const lastStats = (stderr: string) => stderr.split('\n').filter((line) => line.includes(' stats ')).at(-1) ?? '';
const statsIn = (stderr: string) => Number(/ in=(\d+) /.exec(lastStats(stderr))?.[1] ?? -1);

const spawned = tracked();

// Spends `us` microseconds per message: a worker slower than its producer.
const slowFilter = filterFile(dir, 'slow.mjs', SPIN_FILTER);

describe('ZeroMQ output partition_by', () => {
  for (const batch of [false, true]) {
    it(`sends each key to one worker, in order; --stats counts per endpoint; a message without the key is an error record${batch ? ' (batch)' : ''}`, async () => {
      const ports = [await freePort(), await freePort()];
      const workers = ports.map((port) => spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' })));
      const messages = range(0, 2999).map((seq) => ({ seq, host: `web-${seq % 13}` }));
      const input = ndjson([...messages.slice(0, 1500), { seq: -1 }, ...messages.slice(1500)]);
      const options = { connect: ports.map(endpoint), socket_type: 'PUSH', partition_by: 'host', ...(batch ? { batch: { max_messages: 100 } } : {}) };
      const producer = await run([...zmqOutput(options), '--stats'], { input });
      expect(producer.code, producer.stderr).toBe(0);
      const expected = ports.map((_, index) => messages.filter((m) => partitionOf(m.host, ports.length) === index));
      const [errorLine, statsLine, ...rest] = producer.stderr.trimEnd().split('\n');
      expect(rest).toEqual([]);
      expect(JSON.parse(errorLine!)).toMatchObject({ error: 'output', reason: "field 'host' missing for partition_by", frame: '{"seq":-1}' });
      expect(statsLine).toMatch(
        new RegExp(` in=3001 created=0 out=3000 dropped=0 errors=1 .* endpoints=${endpoint(ports[0]!)}=${expected[0]!.length},${endpoint(ports[1]!)}=${expected[1]!.length}$`),
      );
      await until(() => workers.every((w, i) => records(w.stdout).length >= expected[i]!.length), 'every message at its worker');
      for (const [i, worker] of workers.entries()) {
        expect((await stop(worker)).code).toBe(0);
        expect(records(worker.stdout), `worker ${i}`).toEqual(expected[i]);
      }
    });
  }

  it('a worker that is down holds its keys back, the producer waits (every key stops), and the worker gets them all in order once it starts', async () => {
    const ports = [await freePort(), await freePort()];
    const early = spawned(zmqInput({ socket_bind: endpoint(ports[0]!), socket_type: 'PULL' }));
    // More messages for the missing worker than the output takes ahead of its socket (2048), over
    // several reads of the input, so that the wait shows on the other worker too.
    const messages = range(0, 39_999).map((seq) => ({ seq, key: `k${seq % 20}` }));
    const producer = spawned([...zmqOutput({ connect: ports.map(endpoint), socket_type: 'PUSH', partition_by: 'key', socket_hwm: 100 }), '--stats', '0.1']);
    producer.child.stdin!.end(ndjson(messages));
    const late = messages.filter((m) => partitionOf(m.key, 2) === 1);
    await producer.waitFor('stderr', new RegExp(` waiting=${endpoint(ports[1]!)}=\\d+`));
    expect(producer.child.exitCode).toBe(null);
    // The live worker's keys wait too: placement and order hold, so the whole stream stops.
    await sleep(300);
    // (It got about 2,700 of its 20,000 here: what went with the first reads, until the other's backlog filled.)
    expect(records(early.stdout).length).toBeLessThan((messages.length - late.length) / 2);
    const lateWorker = spawned(zmqInput({ socket_bind: endpoint(ports[1]!), socket_type: 'PULL' }));
    const finished = await producer.done;
    expect(finished.code, finished.stderr).toBe(0);
    expect(lastStats(finished.stderr)).toMatch(new RegExp(`endpoints=${endpoint(ports[0]!)}=${messages.length - late.length},${endpoint(ports[1]!)}=${late.length}$`));
    await until(() => records(lateWorker.stdout).length >= late.length && records(early.stdout).length >= messages.length - late.length, 'every message');
    expect(records((await stop(lateWorker)).stdout)).toEqual(late);
    expect(records((await stop(early)).stdout)).toEqual(messages.filter((m) => partitionOf(m.key, 2) === 0));
  });

  it('a worker that never comes: at exit the messages left are counted per endpoint, exit 1', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const live = spawned(zmqInput({ socket_bind: endpoint(ports[1]!), socket_type: 'PULL' }));
    const messages = range(0, 299).map((seq) => ({ seq, key: `k${seq}` }));
    const count = (index: number) => messages.filter((m) => partitionOf(m.key, 3) === index).length;
    // Linger long enough that a loaded machine hands the live worker its share well within it.
    const producer = await run(zmqOutput({ connect: ports.map(endpoint), socket_type: 'PUSH', partition_by: 'key', linger: 1000 }), { input: ndjson(messages) });
    expect(producer.code).toBe(1);
    const missing = count(0) + count(2);
    expect(producer.stderr).toBe(
      `message-passing: zeromq output: ${missing} messages could not be delivered within linger (1000 ms): ` +
        `${count(0)} for ${endpoint(ports[0]!)} (no peer connected), ${count(2)} for ${endpoint(ports[2]!)} (no peer connected); start the missing receivers, or raise linger\n`,
    );
    await until(() => records(live.stdout).length >= count(1), 'the live worker');
    expect((await stop(live)).code).toBe(0);
  });

  it('usage errors name the option', async () => {
    for (const [options, expected] of [
      [{ connect: 'tcp://127.0.0.1:5555', partition_by: 'k' }, /--output ZeroMQ: partition_by needs socket_type "PUSH"/],
      [{ connect: 'tcp://127.0.0.1:5555', socket_type: 'PUSH', partition_missing: 'drop' }, /option 'partition_missing' must be one of error, first/],
      [{ connect: 'tcp://127.0.0.1:5555', socket_type: 'PUSH', no_drop: true }, /no_drop applies to PUB sockets only/],
      [{ connect: 'tcp://127.0.0.1:5555', batch: { max_delay: -1 } }, /batch: option 'max_delay' must be/],
    ] as const) {
      const result = await run(zmqOutput(options));
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(expected);
    }
  });
});

describe('ZeroMQ PUB no_drop', () => {
  // Over ipc, whose socket buffers are small, so that what is in flight cannot hide a drop.
  const ipc = (name: string) => `ipc://${join(dir, `${name}-${process.pid}-${Math.random().toString(36).slice(2)}.sock`)}`;
  // 10 MB, more than what the queues (socket_hwm 1000 at the producer, 100 after it) and the ipc
  // socket buffers between the processes hold.
  const total = 5000;
  const pad = 'x'.repeat(2000);

  /** Producer PUB -> distributor (SUB bind -> PUSH bind) -> 2 slow workers; what each worker got. */
  async function distribute(noDrop: boolean): Promise<Array<Array<Record<string, unknown>>>> {
    const [inbound, outbound] = [ipc('in'), ipc('out')];
    const hwm = { socket_hwm: 100 };
    const distributor = spawned([
      ...zmqInput({ socket_bind: inbound, socket_type: 'SUB', ...hwm }),
      ...zmqOutput({ socket_bind: outbound, socket_type: 'PUSH', ...hwm }),
    ]);
    const workers = [0, 1].map(() =>
      spawned([...zmqInput({ connect: outbound, socket_type: 'PULL', ...hwm }), '--filter', slowFilter, '--filter_options', '{"us": 60}'], { timeout: 60_000 }),
    );
    // Counted as it comes: splitting 10 MB of output at each look would slow the machine down.
    let lines = 0;
    for (const worker of workers) worker.child.stdout!.on('data', (chunk: string) => (lines += chunk.split('\n').length - 1));
    const arrived = () => lines;
    // The distributor bound on both sides, and both workers connected before the stream starts:
    // its PUSH deals only to connected peers.
    await until(() => existsSync(inbound.slice('ipc://'.length)) && existsSync(outbound.slice('ipc://'.length)), 'the distributor');
    await sleep(300);
    // A PUB sends only to subscribers: it waits (subscribe_delay) for the distributor's subscription.
    const producer = spawned([...zmqOutput({ connect: inbound, no_drop: noDrop, subscribe_delay: 20, socket_hwm: 1000 }), '--stats', '0.1'], { timeout: 60_000 });
    // As fast as the producer reads; its input stays open until the workers are done, as a stream
    // is stopped from its source (closing a socket may lose what its peer had not read yet).
    producer.child.stdin!.write(ndjson(range(1, total).map((seq) => ({ seq, pad }))));
    await producer.waitFor('stderr', ` in=${total} `, 30_000);
    if (noDrop) await until(() => arrived() >= total, 'every message at a worker', 30_000);
    else {
      // Quiet for a while: whatever was going to arrive has.
      for (let seen = -1, now = arrived(); now !== seen; now = arrived()) {
        seen = now;
        await sleep(300);
      }
    }
    producer.child.stdin!.end();
    const sent = await producer.done;
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stderr.split('\n').filter((line) => line !== '' && !line.includes(' stats '))).toEqual([]);
    const got: Array<Array<Record<string, unknown>>> = [];
    for (const worker of workers) {
      const finished = await stop(worker);
      expect(finished.code).toBe(0);
      got.push(records(finished.stdout));
    }
    expect((await stop(distributor)).code).toBe(0);
    return got;
  }

  it('a distributor fed as fast as STDIN gives delivers every message, in order at each worker', async () => {
    const got = await distribute(true);
    const seqs = got.map((messages) => messages.map((m) => Number(m.seq)));
    for (const [i, list] of seqs.entries()) expect(list.every((s, j) => j === 0 || s > list[j - 1]!), `worker ${i} in order`).toBe(true);
    expect(seqs.flat().sort((a, b) => a - b)).toEqual(range(1, total));
    expect(seqs.every((list) => list.length > total / 4)).toBe(true);
  }, 60_000);

  it('without no_drop the same stream loses messages (PUB is lossy by default)', async () => {
    const got = await distribute(false);
    expect(got.flat().length).toBeLessThan(total);
  }, 60_000);
});

describe('ZeroMQ batch', () => {
  it('PUSH -> PULL with batch: every message, in order, whether lines pass through or are encoded', async () => {
    const port = await freePort();
    const out = join(dir, 'batch.ndjson');
    const pull = spawned([...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }), '--output', 'File', '--output_options', JSON.stringify({ filename: out }), '--stats', '0.1']);
    // Every seventh line not in the form JSON.stringify writes: decoded and encoded between lines that pass as bytes.
    const lines = range(1, 20_000).map((seq) => (seq % 7 === 0 ? `{"seq": ${seq}}` : JSON.stringify({ seq, text: `line ${seq}` })));
    const push = await run([...zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', batch: true }), '--stats'], { input: lines.join('\n') + '\n' });
    expect(push.code, push.stderr).toBe(0);
    expect(lastStats(push.stderr)).toMatch(/ in=20000 created=0 out=20000 dropped=0 errors=0 /);
    await until(() => statsIn(pull.stderr) === 20_000, 'the receiver counting every message');
    expect((await stop(pull)).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toBe(lines.map((line) => JSON.stringify(JSON.parse(line)) + '\n').join(''));
  });

  it('PUB with topic and batch -> SUB subscribed to the topic', async () => {
    const port = await freePort();
    const sub = spawned(zmqInput({ socket_bind: endpoint(port), subscribe: 'logs' }));
    const messages = range(1, 1000).map((n) => ({ n }));
    const pub = await run(zmqOutput({ connect: endpoint(port), topic: 'logs', batch: { max_messages: 64 } }), { input: ndjson(messages) });
    expect(pub.code, pub.stderr).toBe(0);
    await until(() => records(sub.stdout).length >= messages.length, 'every message');
    expect(records((await stop(sub)).stdout)).toEqual(messages);
  });

  it('SIGTERM sends a partial batch at once, and the producer exits 0', async () => {
    const port = await freePort();
    const pull = spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }));
    const push = spawned([...zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', batch: { max_delay: '1h' } }), '--stats', '0.05']);
    push.child.stdin!.write(ndjson(range(1, 10).map((n) => ({ n }))));
    await push.waitFor('stderr', / in=10 /);
    await sleep(200);
    expect(pull.stdout).toBe('');
    const finished = await stop(push);
    expect(finished.code, finished.stderr).toBe(0);
    await until(() => records(pull.stdout).length >= 10, 'the partial batch');
    expect(records((await stop(pull)).stdout)).toEqual(range(1, 10).map((n) => ({ n })));
  });

  it('with the Null decoder a receiver splits only when asked (split_lines)', async () => {
    const ports = [await freePort(), await freePort()];
    const raw = ['--decoder', 'Null', '--encoder', 'Null'];
    const whole = spawned([...zmqInput({ socket_bind: endpoint(ports[0]!), socket_type: 'PULL' }), '--decoder', 'Null']);
    const split = spawned([...zmqInput({ socket_bind: endpoint(ports[1]!), socket_type: 'PULL', split_lines: true }), ...raw]);
    for (const port of ports) {
      const sent = await run([...zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', batch: true }), ...raw], { input: 'one\ntwo\nthree\n' });
      expect(sent.code, sent.stderr).toBe(0);
    }
    await until(() => whole.stdout.length > 0 && split.stdout.split('\n').length > 3, 'both receivers');
    expect((await stop(whole)).stdout).toBe('"one\\ntwo\\nthree\\n"\n');
    expect((await stop(split)).stdout).toBe('one\ntwo\nthree\n');
  });
});

describe('distributed multi-line assembly, partitioned by origin.file at every hop', () => {
  it('2 File readers -> 2 Parse -> 2 Multiline -> 1 writer, while the logs are written: every record exactly once, intact', async () => {
    const logs = join(dir, 'distributed');
    const folders = [join(logs, 'host-a'), join(logs, 'host-b')];
    for (const folder of folders) mkdirSync(folder, { recursive: true });
    const files = [join(folders[0]!, 'api.log'), join(folders[0]!, 'worker.log'), join(folders[1]!, 'api.log'), join(folders[1]!, 'cron.log')];

    // Python logging with tracebacks, one JSON object per line as container runtimes write them.
    interface Expected { file: string; log: string; lines: number; level: string; message: string }
    const expected: Expected[] = [];
    const lineSets = files.map((file, f) => {
      const lines: string[] = [];
      for (let r = 0; r < 60; r++) {
        const failed = r % 3 === 1;
        const header = `2024-05-01 12:${String(r).padStart(2, '0')}:0${f},${100 + r} - ${failed ? 'ERROR' : 'INFO'} - app.${f} - request ${r} ${failed ? 'failed' : 'done'}`;
        const record = failed
          ? [header, 'Traceback (most recent call last):', `  File "app.py", line ${r + 10}, in handle`, `    process(request_${r})`, `ValueError: bad input ${r} in ${f}`]
          : [header];
        expected.push({ file, log: record.join('\n'), lines: record.length, level: failed ? 'ERROR' : 'INFO', message: `request ${r} ${failed ? 'failed' : 'done'}` });
        lines.push(...record);
      }
      // The last record of a file ends when the next begins: a closing line, itself flushed at the stop.
      const closing = `2024-05-01 13:00:00,000 - INFO - app.${f} - closing`;
      expected.push({ file, log: closing, lines: 1, level: 'INFO', message: 'closing' });
      lines.push(closing);
      return lines.map((log) => JSON.stringify({ log, stream: 'stderr' }) + '\n');
    });

    const [p1, p2, s1, s2, w] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const stats = ['--stats', '0.2'];
    const writer = spawned([...zmqInput({ socket_bind: endpoint(w), socket_type: 'PULL' }), ...stats], { timeout: 60_000 });
    const stores = [s1, s2].map((port) =>
      spawned(
        [
          ...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }),
          '--filter', 'Multiline',
          '--filter_options', JSON.stringify({ field: 'log', preset: 'python', key: 'origin.file', idle: '1m', max_age: '1m' }),
          ...zmqOutput({ connect: [endpoint(w)], socket_type: 'PUSH', partition_by: 'origin.file' }),
          ...stats,
        ],
        { timeout: 60_000 },
      ),
    );
    const parsers = [p1, p2].map((port) =>
      spawned(
        [
          ...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }),
          '--filter', 'Parse',
          '--filter_options', JSON.stringify({ field: 'log', pattern: '%{PYTHON_LOGGING}', on_mismatch: 'pass' }),
          ...zmqOutput({ connect: [s1, s2].map(endpoint), socket_type: 'PUSH', partition_by: 'origin.file', batch: true }),
          ...stats,
        ],
        { timeout: 60_000 },
      ),
    );
    const readers = folders.map((folder) =>
      spawned(
        [
          '--input', 'File',
          '--input_options', JSON.stringify({ filename: join(folder, '*.log'), follow: true, origin: 'origin', poll_interval: '50ms' }),
          ...zmqOutput({ connect: [p1, p2].map(endpoint), socket_type: 'PUSH', partition_by: 'origin.file', batch: true }),
          ...stats,
        ],
        { timeout: 60_000 },
      ),
    );

    // Written while everything runs: small appends taking turns between the files, some cutting a line in two.
    const cursors = lineSets.map(() => 0);
    for (let round = 0; cursors.some((at, f) => at < lineSets[f]!.length); round++) {
      for (const [f, lines] of lineSets.entries()) {
        if (cursors[f]! >= lines.length) continue;
        const take = 1 + ((round * 7 + f * 3) % 9);
        let chunk = lines.slice(cursors[f], cursors[f]! + take).join('');
        cursors[f]! += take;
        if (round % 4 === 3 && cursors[f]! < lines.length) {
          // Half of the next line now, the rest with the next append.
          const next = lines[cursors[f]!]!;
          chunk += next.slice(0, 10);
          lines[cursors[f]!] = next.slice(10);
        }
        appendFileSync(files[f]!, chunk);
      }
      await sleep(10);
    }

    // Every record but the closing ones comes out while the stream runs.
    const done = expected.length - files.length;
    await until(() => statsIn(writer.stderr) >= done, 'every record at the writer', 30_000);

    // Stopped from the source: each stage once the next has counted what it sent.
    const sentTo = (stderr: string, port: number) => Number(new RegExp(`${endpoint(port).replace(/[.]/g, '\\.')}=(\\d+)`).exec(lastStats(stderr))?.[1] ?? 0);
    const stopStage = async (stage: typeof readers, next: typeof readers, ports: number[]) => {
      const ended = await Promise.all(stage.map((p) => stop(p)));
      for (const end of ended) expect(end.code, end.stderr).toBe(0);
      for (const [i, port] of ports.entries()) {
        const total = ended.reduce((sum, end) => sum + sentTo(end.stderr, port), 0);
        await until(() => statsIn(next[i]!.stderr) === total, `all ${total} messages at ${endpoint(port)}`, 20_000);
      }
      return ended;
    };
    const read = await stopStage(readers, parsers, [p1, p2]);
    const lineCount = lineSets.reduce((sum, lines) => sum + lines.length, 0);
    expect(read.reduce((sum, end) => sum + statsIn(end.stderr), 0)).toBe(lineCount);
    await stopStage(parsers, stores, [s1, s2]);
    await stopStage(stores, [writer], [w]);
    const written = await stop(writer);
    expect(written.code, written.stderr).toBe(0);

    const got = records(written.stdout).map((m) => ({
      file: (m.origin as { file: string }).file,
      log: m.log,
      lines: m.lines,
      level: m.level,
      message: m.message,
    }));
    // Exactly once and intact: per file, the records in the order they were written.
    for (const file of files) expect(got.filter((m) => m.file === file), file).toEqual(expected.filter((m) => m.file === file));
    expect(got).toHaveLength(expected.length);
  }, 90_000);
});
