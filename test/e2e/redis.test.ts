// Redis input and output, end to end: the real binary against the Redis server
// on 127.0.0.1:6379, with keys of their own per test (removed after the file).
// Faults: kill -9 of a consumer and a restart, CLIENT KILL under load, the
// server unreachable for a while (through a proxy), and bad configuration.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileOutput, ndjson, peakRss, records, run, sleep, stop, tempDir, tracked, until as untilWithin, type Running } from './helpers.js';
import { FaultProxy } from './proxy.js';

const REDIS = 'redis://127.0.0.1:6379';
/** How long a wait may last: a process loading node-redis on a busy 2-core machine took up to 10 s to start. */
const WAIT = 30_000;
const until = (condition: () => boolean, what?: string, ms = WAIT) => untilWithin(condition, what, ms);
const dir = tempDir();
const track = tracked();
/** A process of the test, killed after it (and after 55 s: a test may take that long on a busy machine). */
const spawned = (args: readonly string[]) => track(args, { timeout: 55_000 });
const redis = createClient({ url: REDIS, RESP: 2 });
const prefix = `mp-test:${process.pid}:`;
let keys = 0;
const newKey = (what: string) => `${prefix}${what}:${++keys}`;

beforeAll(async () => {
  await redis.connect();
});
afterAll(async () => {
  const found: string[] = [];
  for await (const batch of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) found.push(...batch);
  if (found.length > 0) await redis.del(found);
  await redis.quit();
});

const redisInput = (options: object) => ['--input', 'Redis', '--input_options', JSON.stringify(options)];
const redisOutput = (options: object) => ['--output', 'Redis', '--output_options', JSON.stringify(options)];
const range = (count: number) => Array.from({ length: count }, (_, i) => i);

// Waits `ms` per message (asynchronously): a consumer that is still busy when it is killed.
const slowFilter = join(dir, 'slow.mjs');
writeFileSync(slowFilter, 'export default (message, options) => new Promise((resolve) => setTimeout(() => resolve(message), options.ms));\n');
const slow = (ms: number) => ['--filter', slowFilter, '--filter_options', JSON.stringify({ ms })];

/** The `seq` of every message in an NDJSON file (empty when it does not exist yet). */
function seqsIn(path: string): number[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.endsWith('}'))
    .map((line) => (JSON.parse(line) as { seq: number }).seq);
}

/** The files a test's first and second consumer write to, named after its key. */
function consumerFiles(key: string): [string, string] {
  const name = key.replaceAll(':', '_');
  return [join(dir, `${name}-a.ndjson`), join(dir, `${name}-b.ndjson`)];
}

/** Kills `consumer` with kill -9 once `count` messages are in `file` (`what` names them in a timeout), and waits for its end. */
async function killOnceWritten(consumer: Running, file: string, count: number, what: string): Promise<void> {
  await until(() => seqsIn(file).length >= count, what);
  consumer.child.kill('SIGKILL');
  await consumer.done;
}

/** Seqs 0..count-1 missing from the union of `lists`. */
function missing(count: number, ...lists: number[][]): number[] {
  const seen = new Set(lists.flat());
  return range(count).filter((seq) => !seen.has(seq));
}

async function addEntries(key: string, count: number): Promise<void> {
  const pipeline = redis.multi();
  for (const seq of range(count)) pipeline.xAdd(key, '*', { message: JSON.stringify({ seq }) });
  await pipeline.execAsPipeline();
}

async function pendingCount(key: string, group = 'message-passing'): Promise<number> {
  const summary = (await redis.sendCommand(['XPENDING', key, group])) as [number, ...unknown[]];
  return Number(summary[0]);
}

/** Cuts every connection of process `pid` whose name starts with message-passing-ROLE. */
async function killConnections(role: 'input' | 'output', pid: number): Promise<number> {
  const list = String(await redis.sendCommand(['CLIENT', 'LIST']));
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /\bid=(\d+)/.exec(line)?.[1];
    const name = /\bname=(\S*)/.exec(line)?.[1] ?? '';
    if (id && name.startsWith(`message-passing-${role}-`) && name.endsWith(`-${pid}`)) {
      killed += Number(await redis.sendCommand(['CLIENT', 'KILL', 'ID', id]));
    }
  }
  return killed;
}

/** Polls an asynchronous `condition` (a Redis query) until it holds; fails naming `what` after `ms`. */
async function eventually(condition: () => Promise<boolean>, what: string, ms = WAIT): Promise<void> {
  for (const deadline = Date.now() + ms; !(await condition()); await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

const statsLine = (stderr: string) => /stats in=(\d+) created=(\d+) out=(\d+) dropped=(\d+) errors=(\d+)/.exec(stderr)?.slice(1).map(Number);

describe('Redis stream', () => {
  it('STDIN -> stream -> STDOUT: every message once, in order, acknowledged only once written', async () => {
    const key = newKey('stream');
    const messages = range(200).map((seq) => ({ seq, text: `event ${seq}` }));
    const sent = await run(redisOutput({ mode: 'stream', key }), { input: ndjson(messages) });
    expect(sent.code, sent.stderr).toBe(0);
    expect(await redis.xLen(key)).toBe(200);

    // until_empty: the input ends once a read finds nothing more.
    const done = await run([...redisInput({ mode: 'stream', key, block: '100ms', until_empty: true }), '--stats'], { timeout: 55_000 });
    expect(done.code, done.stderr).toBe(0);
    expect(records(done.stdout)).toEqual(messages);
    expect(statsLine(done.stderr)).toEqual([200, 0, 200, 0, 0]);
    expect(await pendingCount(key)).toBe(0);
  });

  it('an entry without a "message" field goes to the error output and is acknowledged', async () => {
    const key = newKey('stream');
    await redis.xAdd(key, '*', { message: '{"seq":0}' });
    await redis.xAdd(key, '*', { level: 'info', text: 'written by another tool' });
    await redis.xAdd(key, '*', { message: 'not json' });
    const reader = spawned(redisInput({ mode: 'stream', key, block: '100ms' }));
    await until(() => records(reader.stderr.replace(/^message-passing:.*$/gm, '')).length >= 2, 'two error records');
    const done = await stop(reader);
    expect(done.code, done.stderr).toBe(0);
    expect(records(done.stdout)).toEqual([{ seq: 0 }]);
    const errors = records(done.stderr);
    expect(errors[0]).toMatchObject({ error: 'input', reason: expect.stringContaining('has no field "message" (its fields: level, text)') });
    expect(errors[1]).toMatchObject({ error: 'decode', source: `redis:${key}:2`, frame: 'not json' });
    expect(await pendingCount(key)).toBe(0);
  });

  it('kill -9 of a consumer, restarted under the same name: it reads its pending entries back, nothing lost', async () => {
    const key = newKey('stream');
    await addEntries(key, 300);
    const [first, second] = consumerFiles(key);
    const options = { mode: 'stream', key, consumer: 'gatherer-1', batch: 10, block: '100ms', claim_idle: '1h' };
    const a = spawned([...redisInput(options), ...slow(2), ...fileOutput(first)]);
    await killOnceWritten(a, first, 50, '50 messages written by the first consumer');
    expect(await pendingCount(key)).toBeGreaterThan(0);

    const b = spawned([...redisInput(options), ...fileOutput(second)]);
    await until(() => missing(300, seqsIn(first), seqsIn(second)).length === 0, 'every message in one of the two files');
    const done = await stop(b);
    expect(done.code, done.stderr).toBe(0);
    expect(await pendingCount(key)).toBe(0);
  });

  it('kill -9 of a consumer: another one claims its entries after claim_idle, nothing lost', async () => {
    const key = newKey('stream');
    await addEntries(key, 300);
    const [first, second] = consumerFiles(key);
    const options = { mode: 'stream', key, batch: 10, block: '100ms', claim_idle: '300ms' };
    const a = spawned([...redisInput({ ...options, consumer: 'a' }), ...slow(2), ...fileOutput(first)]);
    await killOnceWritten(a, first, 50, '50 messages written by the first consumer');

    const b = spawned([...redisInput({ ...options, consumer: 'b' }), ...fileOutput(second)]);
    await until(() => missing(300, seqsIn(first), seqsIn(second)).length === 0, 'every message in one of the two files');
    await b.waitFor('stderr', /claimed \d+ entr/, WAIT);
    const done = await stop(b);
    expect(done.code, done.stderr).toBe(0);
    expect(await pendingCount(key)).toBe(0);
  });

  it('entries a slow consumer holds longer than claim_idle stay its own (their idle time is renewed): nobody else claims them', async () => {
    const key = newKey('stream');
    await addEntries(key, 20);
    const [first, second] = consumerFiles(key);
    // A takes all 20 (a batch, and the next read ahead) and spends 2 s on each batch (its messages wait together): longer than claim_idle.
    const options = { mode: 'stream', key, batch: 10, block: '100ms', claim_idle: '1500ms' };
    const a = spawned([...redisInput({ ...options, consumer: 'a' }), ...slow(2000), ...fileOutput(first)]);
    // The group exists once a consumer has started; it lists a consumer once that one reads (its signal handlers are in place).
    const consumers = async () => ((await redis.sendCommand(['XINFO', 'CONSUMERS', key, 'message-passing']).catch(() => [])) as unknown[]).length;
    await eventually(async () => (await consumers()) === 1, 'the slow consumer reading');
    const b = spawned([...redisInput({ ...options, consumer: 'b' }), ...fileOutput(second)]);
    await eventually(async () => (await consumers()) === 2, 'the second consumer reading');
    await until(() => seqsIn(first).length === 20, 'all 20 through the slow consumer');
    const done = await Promise.all([stop(a), stop(b)]);
    for (const result of done) expect(result.code, result.stderr).toBe(0);
    expect(seqsIn(second)).toEqual([]);
    expect(seqsIn(first).sort((x, y) => x - y)).toEqual(range(20));
  });

  it('CLIENT KILL of the input\'s connections under load: nothing lost', async () => {
    const key = newKey('stream');
    await addEntries(key, 1000);
    const out = join(dir, `${key.replaceAll(':', '_')}.ndjson`);
    const reader = spawned([...redisInput({ mode: 'stream', key, batch: 20, block: '100ms' }), ...slow(1), ...fileOutput(out)]);
    let kills = 0;
    for (let round = 0; round < 3; round++) {
      await until(() => seqsIn(out).length >= 150 * (round + 1), `${150 * (round + 1)} messages`);
      kills += await killConnections('input', reader.child.pid!);
    }
    expect(kills).toBeGreaterThan(0);
    await until(() => missing(1000, seqsIn(out)).length === 0, 'every message');
    await eventually(async () => (await pendingCount(key)) === 0, 'every entry acknowledged');
    const done = await stop(reader);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/Redis input: connection to redis:\/\/127\.0\.0\.1:6379 lost/);
  });
});

describe('Redis list', () => {
  it('STDIN -> list -> STDOUT until the list is empty, and nothing of the consumer is left once it ends', async () => {
    const key = newKey('list');
    const messages = range(50).map((seq) => ({ seq }));
    const sent = await run(redisOutput({ key }), { input: ndjson(messages) });
    expect(sent.code, sent.stderr).toBe(0);
    expect(await redis.lLen(key)).toBe(50);
    const done = await run(redisInput({ key, block: '100ms', consumer: 'only', until_empty: true }), { timeout: 55_000 });
    expect(done.code, done.stderr).toBe(0);
    expect(records(done.stdout)).toEqual(messages);
    const left: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${key}*` })) left.push(...batch);
    expect(left).toEqual([]);
  });

  it('kill -9 of a consumer: once its lease runs out, the next consumer puts its processing list back first, nothing lost', async () => {
    const key = newKey('list');
    await redis.rPush(key, range(300).map((seq) => JSON.stringify({ seq })));
    const [first, second] = consumerFiles(key);
    const options = { key, batch: 10, block: '100ms', claim_idle: '400ms' };
    const a = spawned([...redisInput({ ...options, consumer: 'a' }), ...slow(2), ...fileOutput(first)]);
    await killOnceWritten(a, first, 50, '50 messages written by the first consumer');
    expect(await redis.lLen(`${key}:processing:a`)).toBeGreaterThan(0);

    const b = spawned([...redisInput({ ...options, consumer: 'b' }), ...fileOutput(second)]);
    await until(() => missing(300, seqsIn(first), seqsIn(second)).length === 0, 'every message in one of the two files');
    await b.waitFor('stderr', /took back \d+ messages? of .* left by consumer a/, WAIT);
    const done = await stop(b);
    expect(done.code, done.stderr).toBe(0);
    expect(await redis.exists([key, `${key}:processing:a`, `${key}:processing:b`, `${key}:consumers`])).toBe(0);
  });
});

describe('Redis: default consumer names (HOST-PID)', () => {
  it('a consumer killed with kill -9 and started again on this host takes back what the dead one held at once, list and stream', async () => {
    const cases = await Promise.all(
      (['list', 'stream'] as const).map(async (mode) => {
        const key = newKey(`default-${mode}`);
        if (mode === 'list') await redis.rPush(key, range(200).map((seq) => JSON.stringify({ seq })));
        else await addEntries(key, 200);
        const [first, second] = consumerFiles(key);
        // claim_idle of an hour: only knowing that the process is gone can explain taking its messages back.
        const options = { mode, key, batch: 10, block: '100ms', claim_idle: '1h' };
        const a = spawned([...redisInput(options), ...slow(3), ...fileOutput(first)]);
        await killOnceWritten(a, first, 30, `30 messages written by the first ${mode} consumer`);
        return { mode, key, first, second, options };
      }),
    );
    const restarted = cases.map(({ options, second }) => spawned([...redisInput(options), ...fileOutput(second)]));
    for (const [i, { mode, first, second }] of cases.entries()) {
      await until(() => missing(200, seqsIn(first), seqsIn(second)).length === 0, `every ${mode} message in one of the two files`);
      await restarted[i]!.waitFor('stderr', mode === 'list' ? /took back \d+ messages? of .* left by consumer / : /took over \d+ entr(y|ies) of .* \(its process is gone\)/, WAIT);
    }
    const streamKey = cases[1]!.key;
    const consumers = async () => ((await redis.sendCommand(['XINFO', 'CONSUMERS', streamKey, 'message-passing'])) as unknown[]).length;
    // The dead consumer is gone from the group: the live one is the only one there, and it leaves at its clean end.
    expect(await consumers()).toBe(1);
    const done = await Promise.all(restarted.map(stop));
    for (const result of done) expect(result.code, result.stderr).toBe(0);
    expect(await pendingCount(streamKey)).toBe(0);
    expect(await consumers()).toBe(0);
  });
});

describe('Redis output', () => {
  it('%{field} in key: one list per value; a message without the field goes to the error output', async () => {
    const key = newKey('by-host');
    const sent = await run([...redisOutput({ mode: 'list', key: `${key}:%{host.name}` }), '--stats'], {
      input: ndjson([{ host: { name: 'a' }, n: 1 }, { host: { name: 'b' }, n: 2 }, { n: 3 }, { host: { name: 'a' }, n: 4 }]),
    });
    expect(sent.code, sent.stderr).toBe(0);
    expect(await redis.lRange(`${key}:a`, 0, -1)).toEqual(['{"host":{"name":"a"},"n":1}', '{"host":{"name":"a"},"n":4}']);
    expect(await redis.lRange(`${key}:b`, 0, -1)).toEqual(['{"host":{"name":"b"},"n":2}']);
    expect(records(sent.stderr.replace(/^message-passing:.*$/gm, ''))).toEqual([
      { error: 'output', reason: `Redis output: key ${key}:%{host.name}: the message has no field host.name`, source: 'stdin:3', stage: 'output Redis', frame: '{"n":3}' },
    ]);
    expect(statsLine(sent.stderr)).toEqual([4, 0, 3, 0, 1]);
  });

  it('max_len trims a stream to about that many entries', async () => {
    const key = newKey('trimmed');
    const sent = await run(redisOutput({ mode: 'stream', key, max_len: 100, batch: 50 }), { input: ndjson(range(2000).map((seq) => ({ seq }))) });
    expect(sent.code, sent.stderr).toBe(0);
    const length = await redis.xLen(key);
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(2000);
  });

  it('pub/sub: subscribers get what is published while they listen; nobody listening is said', async () => {
    const channel = newKey('channel');
    const subscriber = spawned(redisInput({ mode: 'pubsub', channels: channel }));
    await eventually(async () => Number(((await redis.sendCommand(['PUBSUB', 'NUMSUB', channel])) as unknown[])[1]) === 1, 'the subscription');
    const sent = await run(redisOutput({ mode: 'pubsub', channel }), { input: ndjson(range(50).map((seq) => ({ seq }))) });
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stderr).toBe('');
    await until(() => records(subscriber.stdout).length >= 50, '50 messages');
    const done = await stop(subscriber);
    expect(done.code, done.stderr).toBe(0);
    expect(records(done.stdout)).toEqual(range(50).map((seq) => ({ seq })));

    const alone = await run(redisOutput({ mode: 'pubsub', channel: newKey('nobody') }), { input: '{"a":1}\n' });
    expect(alone.code).toBe(0);
    expect(alone.stderr).toMatch(/^message-passing: Redis output: no subscriber on channel \S+: Redis drops what it publishes to nobody/);
  });

  it('pub/sub without mode: patterns subscribe, channel "PREFIX.%{svc}" publishes; a message without svc is an error record naming it, the rest go on', async () => {
    const base = newKey('svc');
    const subscriber = spawned(redisInput({ patterns: `${base}.*` }));
    // Both start at once; the publisher gets its input once the subscription is there.
    const publisher = spawned([...redisOutput({ channel: `${base}.%{svc}` }), '--stats']);
    const pid = subscriber.child.pid!;
    // The input's connection, named after its process, once it holds the pattern subscription.
    const subscribed = (line: string) => /\bpsub=1\b/.test(line) && new RegExp(`\\bname=message-passing-input-\\S*-${pid}\\b`).test(line);
    await eventually(async () => String(await redis.sendCommand(['CLIENT', 'LIST'])).split('\n').some(subscribed), 'the pattern subscription');
    const messages = [{ svc: 'api', n: 1 }, { n: 2 }, { svc: 'db', n: 3 }];
    publisher.child.stdin!.end(ndjson(messages));
    const sent = await publisher.done;
    expect(sent.code, sent.stderr).toBe(0);
    expect(records(sent.stderr.replace(/^message-passing:.*$/gm, ''))).toEqual([
      { error: 'output', reason: `Redis output: channel ${base}.%{svc}: the message has no field svc`, source: 'stdin:2', stage: 'output Redis', frame: '{"n":2}' },
    ]);
    // Both published messages had a subscriber: no "no subscriber" warning.
    expect(sent.stderr).not.toMatch(/no subscriber/);
    expect(statsLine(sent.stderr)).toEqual([3, 0, 2, 0, 1]);
    await until(() => records(subscriber.stdout).length >= 2, 'the two published messages');
    const done = await stop(subscriber);
    expect(done.code, done.stderr).toBe(0);
    expect(records(done.stdout)).toEqual([messages[0], messages[2]]);
  });

  it('a key of another type met while running (%{k} reaching a string): only its messages go to the error output with WRONGTYPE and the key, the rest are written', async () => {
    const key = newKey('typed');
    await redis.set(`${key}:b`, 'a string');
    const messages = [{ k: 'a', n: 1 }, { k: 'b', n: 2 }, { k: 'a', n: 3 }, { k: 'c', n: 4 }, { k: 'b', n: 5 }];
    const sent = await run([...redisOutput({ key: `${key}:%{k}` }), '--stats'], { input: ndjson(messages) });
    expect(sent.code, sent.stderr).toBe(0);
    expect(await redis.lRange(`${key}:a`, 0, -1)).toEqual([JSON.stringify(messages[0]), JSON.stringify(messages[2])]);
    expect(await redis.lRange(`${key}:c`, 0, -1)).toEqual([JSON.stringify(messages[3])]);
    expect(await redis.get(`${key}:b`)).toBe('a string');
    const reason = `Redis output: WRONGTYPE Operation against a key holding the wrong kind of value (key ${key}:b)`;
    expect(records(sent.stderr.replace(/^message-passing:.*$/gm, ''))).toEqual([
      { error: 'output', reason, source: 'stdin:2', stage: 'output Redis', frame: JSON.stringify(messages[1]) },
      { error: 'output', reason, source: 'stdin:5', stage: 'output Redis', frame: JSON.stringify(messages[4]) },
    ]);
    expect(statsLine(sent.stderr)).toEqual([5, 0, 3, 0, 2]);
  });

  it('pub/sub: past a queue of 10,000 while the chain is busy, messages are dropped and counted, never silently', async () => {
    const channel = newKey('flood');
    // The first message holds the chain 2 s; meanwhile everything published queues in the input.
    const hold = join(dir, 'hold.mjs');
    writeFileSync(hold, 'export default (m) => (m.hold ? new Promise((resolve) => setTimeout(() => resolve(m), 2000)) : m);\n');
    const subscriber = spawned([...redisInput({ mode: 'pubsub', channels: channel }), '--filter', hold]);
    await eventually(async () => Number(((await redis.sendCommand(['PUBSUB', 'NUMSUB', channel])) as unknown[])[1]) === 1, 'the subscription');
    await redis.publish(channel, '{"hold":true}');
    const flood = redis.multi();
    for (const seq of range(15_000)) flood.publish(channel, `{"seq":${seq}}`);
    await flood.exec();
    await subscriber.waitFor('stderr', /dropped \d+ messages/, WAIT);
    await until(() => records(subscriber.stdout).length >= 10_000, 'the queue to drain');
    const { code, stdout, stderr } = await stop(subscriber);
    expect(code, stderr).toBe(0);
    const dropped = [...stderr.matchAll(/Redis input: dropped (\d+) messages of redis:\S+: the chain could not keep up/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(dropped).toBeGreaterThan(0);
    expect(records(stdout).length + dropped).toBe(15_001);
  });

  it('CLIENT KILL of its connection under load: nothing lost, and what is sent again keeps its order', async () => {
    const key = newKey('killed');
    const writer = spawned([...redisOutput({ mode: 'stream', key, batch: 50 })]);
    for (let part = 0; part < 10; part++) {
      writer.child.stdin!.write(ndjson(range(300).map((i) => ({ seq: part * 300 + i }))));
      await eventually(async () => (await redis.xLen(key)) >= part * 300, `${part * 300} entries`);
      if (part % 3 === 1) expect(await killConnections('output', writer.child.pid!)).toBe(1);
    }
    writer.child.stdin!.end();
    const done = await writer.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/Redis output: connection to redis:\/\/127\.0\.0\.1:6379 lost/);
    const entries = await redis.xRange(key, '-', '+');
    const seqs = (entries ?? []).map((entry) => (JSON.parse(entry.message.message!) as { seq: number }).seq);
    expect(missing(3000, seqs)).toEqual([]);
    // A batch Redis took just before the kill, its answer lost, is sent again: duplicates, but
    // each message first arrives in the order written.
    const firstArrivals = seqs.filter((seq, i) => seqs.indexOf(seq) === i);
    expect(firstArrivals).toEqual(range(3000));
  });

  it('Redis unreachable for a while: the output waits, then delivers everything', async () => {
    const proxy = await FaultProxy.start(6379);
    const key = newKey('outage');
    const writer = spawned(redisOutput({ mode: 'list', key, url: `redis://127.0.0.1:${proxy.port}` }));
    writer.child.stdin!.write(ndjson(range(100).map((seq) => ({ seq }))));
    await eventually(async () => (await redis.lLen(key)) === 100, 'the first 100');
    await proxy.down();
    writer.child.stdin!.write(ndjson(range(100).map((seq) => ({ seq: 100 + seq }))));
    await writer.waitFor('stderr', 'lost', WAIT);
    await proxy.up();
    writer.child.stdin!.end();
    const done = await writer.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/connected to redis:\/\/127\.0\.0\.1:\d+ again/);
    const stored = (await redis.lRange(key, 0, -1)).map((text) => (JSON.parse(text) as { seq: number }).seq);
    expect(missing(200, stored)).toEqual([]);
  });

  it('Redis unreachable: the chain waits (the input stops reading, memory stays bounded), then everything goes in, in order', async () => {
    const proxy = await FaultProxy.start(6379);
    const key = newKey('stalled');
    const writer = spawned(redisOutput({ mode: 'list', key, url: `redis://127.0.0.1:${proxy.port}` }));
    writer.child.stdin!.write('{"seq":0}\n');
    await eventually(async () => (await redis.lLen(key)) === 1, 'the first message');
    await proxy.down();
    // 20 MB offered while Redis is away; the output holds a window of 8 batches at most.
    const pad = 'x'.repeat(1000);
    for (let part = 0; part < 20; part++) writer.child.stdin!.write(ndjson(range(1000).map((i) => ({ seq: 1 + part * 1000 + i, pad }))));
    await writer.waitFor('stderr', 'lost', WAIT);
    await sleep(1000);
    const unread = writer.child.stdin!.writableLength;
    const peak = peakRss(writer.child.pid!);
    await proxy.up();
    writer.child.stdin!.end();
    const done = await writer.done;
    expect(done.code, done.stderr).toBe(0);
    expect(unread).toBeGreaterThan(15 << 20);
    expect(peak).toBeLessThan(150 << 20);
    const stored = (await redis.lRange(key, 0, -1)).map((text) => (JSON.parse(text) as { seq: number }).seq);
    expect([...new Set(stored)]).toEqual(range(20_001));
  });

  it('Redis unreachable for longer than retry_timeout: the count left behind, exit 1', async () => {
    const proxy = await FaultProxy.start(6379);
    const key = newKey('gone');
    const writer = spawned(redisOutput({ mode: 'stream', key, url: `redis://127.0.0.1:${proxy.port}`, retry_timeout: '300ms' }));
    writer.child.stdin!.write('{"seq":-1}\n');
    // Stored, and Redis's answer (1 entry added) delivered: the output counts it as delivered.
    await until(() => proxy.answers.includes(':1\r\n'), 'the answer to the first message', WAIT);
    expect(await redis.xLen(key)).toBe(1);
    await proxy.down();
    writer.child.stdin!.end(ndjson(range(40).map((seq) => ({ seq }))));
    const done = await writer.done;
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(
      /^message-passing: Redis output: 40 messages could not be delivered to redis:\/\/127\.0\.0\.1:\d+: .*gave up after retry_timeout \(300ms\)$/m,
    );
    expect(await redis.xLen(key)).toBe(1);
  });
});

describe('Redis: bad configuration', () => {
  it('an unreachable server or a key of another type: one line, exit 1, for the input and the output', async () => {
    const key = newKey('string');
    await redis.set(key, 'a string');
    const refused = 'connection refused (is the server running, on that port?)';
    const cases: Array<[string[], string]> = [
      [redisOutput({ url: 'redis://127.0.0.1:1', key: 'x' }), `Redis output: cannot connect to redis://127.0.0.1:1: ${refused}`],
      [redisInput({ url: 'redis://127.0.0.1:1', mode: 'stream', key: 'x' }), `Redis input: cannot connect to redis://127.0.0.1:1: ${refused}`],
      [redisOutput({ mode: 'stream', key }), `Redis output: key ${key} holds a string, not a stream (choose another key, or mode "stream")`],
      [redisInput({ mode: 'list', key }), `Redis input: key ${key} holds a string, not a list (choose another key)`],
      [redisInput({ mode: 'stream', key }), `Redis input: key ${key} is not a stream (choose another key, or mode "list" for a list)`],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args, { input: '{}\n', timeout: 55_000 })));
    results.forEach((result, i) => {
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`message-passing: ${cases[i]![1]}\n`);
    });
  });

  it('option mistakes are usage errors naming the plugin and the option, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [redisInput({ mode: 'pubsub' }), /--input Redis: mode "pubsub" needs channels or patterns/],
      [redisInput({ mode: 'stream' }), /--input Redis: mode "stream" needs key/],
      [redisInput({ key: 'x', block: '1 s' }), /--input Redis: option 'block' must be a duration/],
      [redisInput({ channels: 'x', until_empty: true }), /--input Redis: until_empty applies to modes list and stream/],
      [redisOutput({ url: 'http://127.0.0.1', key: 'x' }), /--output Redis: url: 'http:\/\/127\.0\.0\.1' must start with redis:\/\//],
      [redisOutput({ mode: 'list', key: 'x', channel: 'y' }), /--output Redis: channel applies to mode pubsub/],
      [redisOutput({ mode: 'list', key: 'x', max_len: 10 }), /--output Redis: max_len applies to mode stream only/],
      [redisOutput({ key: 'x:%{' }), /--output Redis: key: '%\{' without a closing '\}'/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((result, i) => {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(cases[i]![1]);
    });
  });

  it('other pipelines do not load the redis or pg modules: only a plugin that uses them does', async () => {
    const hook = join(dir, 'loaded.cjs');
    writeFileSync(
      hook,
      "process.on('exit', () => process.stderr.write('loaded: ' + Object.keys(require.cache).filter((f) => /[\\\\/]node_modules[\\\\/](redis|@redis[\\\\/]client|pg)[\\\\/]/.test(f)).length + '\\n'));\n",
    );
    const env = { NODE_OPTIONS: `--require ${hook}` };
    const plain = await run([], { input: '{}\n', env });
    expect(plain.stdout).toBe('{}\n');
    expect(plain.stderr).toBe('loaded: 0\n');
    const withRedis = await run(redisOutput({ key: newKey('loaded') }), { input: '{}\n', env });
    expect(withRedis.code, withRedis.stderr).toBe(0);
    expect(withRedis.stderr).toMatch(/^loaded: [1-9]\d*\n$/);
  });

  it('--help Redis says pub/sub is lossy', async () => {
    const help = await run(['--help', 'Redis']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Pub\/sub is lossy by design/);
  });
});
