// ZeroMQ input and output, end to end: the real binary over real TCP sockets on
// 127.0.0.1, in every topology of Perl's Message::Passing::ZeroMQ, plus the
// failure cases (no peer, address in use, malformed endpoints).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Pull, Push, Subscriber, XPublisher } from 'zeromq';
import { endpoint, filterFile, freePort, lines, ndjson, range, records, run, sleep, SPIN_FILTER, start, stop, tempDir, tracked, until, zmqInput, zmqOutput, type Running } from './helpers.js';

const dir = tempDir();

/** Every process a test starts is ended after it, whatever happened. */
const spawned = tracked();

const tagFilter = filterFile(dir, 'tag.mjs', 'export default (message, options) => ({ ...message, worker: options.name });\n');
// Spends `us` microseconds per message: a consumer slower than its producer.
const slowFilter = filterFile(dir, 'slow.mjs', SPIN_FILTER);
// Counts messages, checks `seq` runs 0, 1, 2, ... and pauses now and then; emits one summary at `expect`.
const countFilter = filterFile(
  dir,
  'count.mjs',
  `export default class Count {
  constructor(options) { this.options = options; this.count = 0; this.outOfOrder = 0; this.next = 0; }
  filter(message) {
    if (message.seq !== this.next) this.outOfOrder++;
    this.next = message.seq + 1;
    this.count++;
    const summary = this.count === this.options.expect ? { count: this.count, outOfOrder: this.outOfOrder } : undefined;
    if (this.count % this.options.pauseEvery === 0) return new Promise((resolve) => setTimeout(() => resolve(summary), this.options.pauseMs));
    return summary;
  }
}
`,
);

describe('ZeroMQ PUB -> SUB', () => {
  it('a one-liner into a bound SUB delivers its message every time, 20 times in a row', async () => {
    const port = await freePort();
    const sub = spawned(zmqInput({ socket_bind: endpoint(port) }));
    for (let n = 1; n <= 20; n++) {
      const sender = await run(zmqOutput({ connect: endpoint(port) }), { input: `{"n":${n}}\n` });
      expect(sender.code, sender.stderr).toBe(0);
      expect(sender.stderr).toBe('');
    }
    await until(() => records(sub.stdout).length >= 20, '20 messages');
    const finished = await stop(sub);
    expect(finished.code, finished.stderr).toBe(0);
    expect(records(finished.stdout)).toEqual(range(1, 20).map((n) => ({ n })));
  });

  it('a stream of messages arrives whole and in order (PUB connects, SUB binds)', async () => {
    const port = await freePort();
    const sub = spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'SUB' }));
    const messages = range(1, 2000).map((seq) => ({ seq, text: `message ${seq}` }));
    const sender = await run(zmqOutput({ connect: endpoint(port), socket_type: 'PUB' }), { input: ndjson(messages) });
    expect(sender.code, sender.stderr).toBe(0);
    await until(() => records(sub.stdout).length >= messages.length, 'all messages');
    expect((await stop(sub)).code).toBe(0);
    expect(records(sub.stdout)).toEqual(messages);
  });

  it('SUB connects to a bound PUB (the PUB waits for its subscriber)', async () => {
    const port = await freePort();
    const pub = spawned(zmqOutput({ socket_bind: endpoint(port) }));
    const sub = spawned(zmqInput({ connect: endpoint(port) }));
    pub.child.stdin!.end(ndjson([{ hello: 'world' }]));
    const sent = await pub.done;
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => sub.stdout.includes('hello'), 'the message');
    expect((await stop(sub)).code).toBe(0);
    expect(records(sub.stdout)).toEqual([{ hello: 'world' }]);
  });

  it('topic sends two parts [topic, frame]; a SUB input keeps the last part', async () => {
    // On the wire: a plain subscriber in this process sees both parts.
    const rawPort = await freePort();
    const raw = new Subscriber();
    raw.subscribe('logs');
    await raw.bind(endpoint(rawPort));
    try {
      // A pending receive is what makes zeromq.js attach the connecting peer, and so send the subscription.
      raw.receiveTimeout = 10_000;
      const received = raw.receive();
      const sent = await run(zmqOutput({ connect: endpoint(rawPort), topic: 'logs' }), { input: '{"a":1}\n' });
      expect(sent.code, sent.stderr).toBe(0);
      expect((await received).map((part) => part.toString())).toEqual(['logs', '{"a":1}']);
    } finally {
      raw.close();
    }
    // Through our own SUB input, subscribed to the topic.
    const port = await freePort();
    const sub = spawned(zmqInput({ socket_bind: endpoint(port), subscribe: 'logs' }));
    const sent = await run(zmqOutput({ connect: endpoint(port), topic: 'logs' }), { input: '{"b":2}\n' });
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => sub.stdout.includes('"b"'), 'the message');
    expect((await stop(sub)).code).toBe(0);
    expect(records(sub.stdout)).toEqual([{ b: 2 }]);
  });

  it('subscribe keeps only the messages that start with one of its prefixes', async () => {
    const port = await freePort();
    const sub = spawned(zmqInput({ socket_bind: endpoint(port), subscribe: ['{"level":"error"', '{"end"'] }));
    const messages = range(1, 30).map((n) => ({ level: n % 3 === 0 ? 'error' : 'info', n }));
    const sent = await run(zmqOutput({ connect: endpoint(port) }), { input: ndjson([...messages, { end: true }]) });
    expect(sent.code, sent.stderr).toBe(0);
    // One connection keeps order: once the end marker is here, everything before it is too.
    await until(() => sub.stdout.includes('"end"'), 'the end marker');
    expect((await stop(sub)).code).toBe(0);
    expect(records(sub.stdout)).toEqual([...messages.filter((m) => m.level === 'error'), { end: true }]);
  });
});

describe('ZeroMQ PUSH -> PULL', () => {
  const messages = range(1, 3000).map((seq) => ({ seq, host: `web-${seq % 7}` }));

  it('PULL binds, PUSH connects: every message, in order', async () => {
    const port = await freePort();
    const pull = spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }));
    const push = await run(zmqOutput({ connect: endpoint(port), socket_type: 'PUSH' }), { input: ndjson(messages) });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stderr).toBe('');
    await until(() => records(pull.stdout).length >= messages.length, 'all messages');
    expect((await stop(pull)).code).toBe(0);
    expect(records(pull.stdout)).toEqual(messages);
  });

  it('PUSH binds, PULL connects: the PUSH waits for its peer, then delivers everything', async () => {
    const port = await freePort();
    const push = spawned(zmqOutput({ socket_bind: endpoint(port), socket_type: 'PUSH', linger: 10_000 }), { input: ndjson(messages) });
    const pull = spawned(zmqInput({ connect: endpoint(port), socket_type: 'PULL' }));
    const sent = await push.done;
    expect(sent.code, sent.stderr).toBe(0);
    await until(() => records(pull.stdout).length >= messages.length, 'all messages');
    expect((await stop(pull)).code).toBe(0);
    expect(records(pull.stdout)).toEqual(messages);
  });

  it('fan-in: several producers into one PULL, nothing lost, each one in order', async () => {
    const port = await freePort();
    const pull = spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }));
    const producers = ['a', 'b', 'c'];
    const count = 1000;
    const results = await Promise.all(
      producers.map((producer) =>
        run(zmqOutput({ connect: endpoint(port), socket_type: 'PUSH' }), { input: ndjson(range(1, count).map((seq) => ({ producer, seq }))) }),
      ),
    );
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    await until(() => records(pull.stdout).length >= producers.length * count, 'all messages');
    expect((await stop(pull)).code).toBe(0);
    const received = records(pull.stdout);
    expect(received).toHaveLength(producers.length * count);
    for (const producer of producers) {
      expect(received.filter((m) => m.producer === producer).map((m) => m.seq)).toEqual(range(1, count));
    }
  });

  it('a distributor (bound SUB -> bound PUSH) shares the work between two workers; every message is accounted for', async () => {
    const [inPort, outPort] = [await freePort(), await freePort()];
    const distributor = spawned([
      ...zmqInput({ socket_bind: endpoint(inPort), socket_type: 'SUB' }),
      ...zmqOutput({ socket_bind: endpoint(outPort), socket_type: 'PUSH' }),
    ]);
    const worker = (name: string) =>
      spawned([...zmqInput({ connect: endpoint(outPort), socket_type: 'PULL' }), '--filter', tagFilter, '--filter_options', JSON.stringify({ name })]);
    const workers = [worker('w1'), worker('w2')];
    const producer = spawned(zmqOutput({ connect: endpoint(inPort) }));
    // Probes until both workers are connected: the PUSH only deals to connected peers.
    let probe = 0;
    const probing = setInterval(() => producer.child.stdin!.write(`{"probe":${++probe}}\n`), 30);
    try {
      await until(() => workers.every((w) => w.stdout.includes('probe')), 'a probe at each worker');
    } finally {
      clearInterval(probing);
    }
    const total = 1000;
    producer.child.stdin!.end(ndjson(range(1, total).map((id) => ({ id }))));
    expect((await producer.done).code).toBe(0);
    const work = () => workers.flatMap((w) => records(w.stdout).filter((m) => m.id !== undefined));
    await until(() => work().length >= total, 'every message at a worker');
    for (const w of workers) expect((await stop(w)).code).toBe(0);
    expect((await stop(distributor)).code).toBe(0);
    const received = work();
    expect(received.map((m) => m.id).sort((a, b) => Number(a) - Number(b))).toEqual(range(1, total));
    for (const name of ['w1', 'w2']) expect(received.filter((m) => m.worker === name).length, `messages at ${name}`).toBeGreaterThan(total / 4);
  });

  it('a multi-part message yields its last part; a frame that is not UTF-8 goes to the error output', async () => {
    const port = await freePort();
    const pull = spawned(zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }));
    const push = new Push();
    push.connect(endpoint(port));
    try {
      await push.send(['topic', '{"a":1}']);
      await push.send(Buffer.from([0xff, 0xfe, 0x41]));
      await push.send('{"b":2}');
    } finally {
      push.linger = 5000;
      push.close();
    }
    await until(() => pull.stdout.includes('"b"'), 'the last message');
    const finished = await stop(pull);
    expect(finished.code).toBe(0);
    expect(records(finished.stdout)).toEqual([{ a: 1 }, { b: 2 }]);
    expect(records(finished.stderr)).toEqual([
      { error: 'encoding', reason: 'frame is not valid UTF-8', source: 'zeromq:2', frame: '//5B', encoding: 'base64' },
    ]);
  });
  it('with the Null codecs, lines pass as bytes both ways, unchanged, even when they are not UTF-8', async () => {
    const port = await freePort();
    const raw = ['--decoder', 'Null', '--encoder', 'Null'];
    const file = join(dir, 'raw.out');
    const pull = spawned([...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }), ...raw, '--output', 'File', '--output_options', JSON.stringify({ filename: file })]);
    const input = Buffer.concat([Buffer.from('plain text\n{"a": 1}\n'), Buffer.from([0x62, 0xff, 0x0a]), Buffer.from('last\n')]);
    const push = await run([...zmqOutput({ connect: endpoint(port), socket_type: 'PUSH' }), ...raw], { input });
    expect(push.code, push.stderr).toBe(0);
    const written = () => (existsSync(file) ? readFileSync(file) : Buffer.alloc(0));
    await until(() => written().includes('last\n'), 'the last line');
    expect((await stop(pull)).code).toBe(0);
    expect(written().equals(input), written().toString('latin1')).toBe(true);
  });
});

describe('ZeroMQ PUB with nobody listening', () => {
  it('says on stderr that its messages went to nobody, once subscribe_delay has passed', async () => {
    const port = await freePort();
    const lonely = await run(zmqOutput({ connect: endpoint(port), subscribe_delay: 0.2 }), { input: '{"a":1}\n' });
    expect(lonely.code).toBe(0);
    expect(lonely.stderr).toMatch(/^message-passing: zeromq output: no subscriber on tcp:\/\/127\.0\.0\.1:\d+ within subscribe_delay \(0\.2 s\); a PUB drops .*\n$/);
  });
});

describe('ZeroMQ PUSH never drops', () => {
  it('with no peer at the end, the count left behind goes to stderr in one line, exit 1', async () => {
    const port = await freePort();
    const connecting = await run(zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', linger: 200 }), { input: '{"a":1}\n' });
    expect(connecting.code).toBe(1);
    expect(connecting.stderr).toMatch(/^message-passing: zeromq output: 1 message could not be delivered within linger \(200 ms\): no peer is connected .*\n$/);
    const binding = await run(zmqOutput({ socket_bind: endpoint(port), socket_type: 'PUSH', linger: 200 }), { input: '{"a":1}\n{"a":2}\n{"a":3}\n' });
    expect(binding.code).toBe(1);
    expect(binding.stderr).toMatch(/^message-passing: zeromq output: 3 messages could not be delivered within linger \(200 ms\): .*\n$/);
  });

  it('a consumer too slow for linger: the producer says messages were left behind, exit 1', async () => {
    const port = await freePort();
    const consumer = spawned([
      ...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL', socket_hwm: 5 }),
      '--filter', slowFilter,
      '--filter_options', '{"us": 5000}',
    ]);
    // 20 MB in 64 KB messages: more than the queues and socket buffers between the two hold.
    const big = 'x'.repeat(65_536);
    const producer = await run(zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', socket_hwm: 5, linger: 300 }), {
      input: ndjson(range(1, 300).map((seq) => ({ seq, big }))),
    });
    expect(producer.code, producer.stderr).toBe(1);
    expect(producer.stderr).toMatch(
      /^message-passing: zeromq output: (\d+ messages? could not be delivered within linger \(300 ms\): the peers .* did not take them in time|linger \(300 ms\) ran out while ZeroMQ still held messages for a slow peer).*\n$/,
    );
    consumer.child.kill('SIGKILL');
  });

  it('SIGTERM while a PUSH waits for a peer: the chain drains, the count goes to stderr, exit 1', async () => {
    const port = await freePort();
    const push = spawned([...zmqOutput({ socket_bind: endpoint(port), socket_type: 'PUSH', linger: 100 }), '--stats', '0.05']);
    // More than the output takes ahead of the socket, so the chain is held up by the missing peer.
    push.child.stdin!.write(ndjson(range(1, 5000).map((seq) => ({ seq }))));
    await push.waitFor('stderr', / in=5000 /);
    const finished = await stop(push);
    expect(finished.code).toBe(1);
    const problems = finished.stderr.split('\n').filter((line) => line !== '' && !line.includes(' stats '));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^message-passing: zeromq output: 5000 messages could not be delivered within linger \(100 ms\): /);
  });

  it('backpressure: a slow consumer slows the producer down, memory stays bounded, every message arrives in order', async () => {
    const port = await freePort();
    const total = 200_000;
    const pad = 'x'.repeat(1500);
    const consumer = spawned([
      ...zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }),
      '--filter', countFilter,
      '--filter_options', JSON.stringify({ expect: total, pauseEvery: 2000, pauseMs: 40 }),
    ], { timeout: 60_000 });
    const producer = spawned(zmqOutput({ connect: endpoint(port), socket_type: 'PUSH' }), { timeout: 60_000 });
    // ~300 MB in all, made as the producer reads it: without backpressure it would all pile up in the producer.
    Readable.from(
      (function* () {
        for (let seq = 0; seq < total; seq += 100) yield ndjson(range(seq, Math.min(seq + 99, total - 1)).map((s) => ({ seq: s, pad })));
      })(),
    ).pipe(producer.child.stdin!);
    let peakKiB = 0;
    const sampling = setInterval(() => {
      try {
        const kib = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${producer.child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peakKiB = Math.max(peakKiB, kib);
      } catch {
        // The producer has exited.
      }
    }, 50);
    try {
      await until(() => consumer.stdout.includes('count'), 'the consumer summary', 55_000);
      const sent = await producer.done;
      expect(sent.code, sent.stderr).toBe(0);
    } finally {
      clearInterval(sampling);
    }
    expect((await stop(consumer)).code).toBe(0);
    expect(records(consumer.stdout)).toEqual([{ count: total, outOfOrder: 0 }]);
    expect(peakKiB, 'producer peak RSS (KiB)').toBeGreaterThan(0);
    expect(peakKiB / 1024, 'producer peak RSS (MB)').toBeLessThan(200);
  }, 60_000);
});

describe('ZeroMQ input stops cleanly', () => {
  for (const socketType of ['PULL', 'SUB'] as const) {
    it(`SIGTERM on a ${socketType} input writes out everything it received, exit 0`, async () => {
      const port = await freePort();
      const input = spawned([
        ...zmqInput({ socket_bind: endpoint(port), socket_type: socketType }),
        '--filter', slowFilter,
        '--filter_options', '{"us": 150}',
      ]);
      const total = 3000;
      // No high-water mark: this peer must not be the one that drops.
      const peer = socketType === 'PULL' ? new Push({ sendHighWaterMark: 0 }) : new XPublisher({ sendHighWaterMark: 0 });
      peer.connect(endpoint(port));
      try {
        if (peer instanceof XPublisher) {
          // The subscription arriving is the SUB's readiness signal.
          peer.receiveTimeout = 10_000;
          await peer.receive();
        }
        for (let seq = 1; seq <= total; seq++) await peer.send(`{"seq":${seq}}`);
        // Stopped while most messages are still queued on its side.
        await input.waitFor('stdout', '"seq"');
        const finished = await stop(input);
        expect(finished.code, finished.stderr).toBe(0);
        expect(records(finished.stdout)).toEqual(range(1, total).map((seq) => ({ seq })));
      } finally {
        peer.close();
      }
    });
  }

  it('peers that restart are reconnected to (PUSH -> restarted PULL, PUB -> restarted SUB)', async () => {
    for (const [outType, inType] of [['PUSH', 'PULL'], ['PUB', 'SUB']] as const) {
      const port = await freePort();
      const receiver = () => spawned(zmqInput({ socket_bind: endpoint(port), socket_type: inType }));
      const sender = spawned(zmqOutput({ connect: endpoint(port), socket_type: outType }));
      let seq = 0;
      const sending = setInterval(() => sender.child.stdin!.write(`{"seq":${++seq}}\n`), 20);
      try {
        const first = receiver();
        await until(() => records(first.stdout).length >= 5, `${inType} receiving`);
        expect((await stop(first)).code).toBe(0);
        const second = receiver();
        await until(() => records(second.stdout).length >= 5, `${inType} receiving again after its restart`);
        const seqs = records(second.stdout).map((m) => Number(m.seq));
        expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `${outType} -> ${inType} in order: ${seqs.join(',')}`).toBe(true);
        expect(seqs[0]).toBeGreaterThan(Number(records(first.stdout).at(-1)!.seq));
        expect((await stop(second)).code).toBe(0);
      } finally {
        clearInterval(sending);
      }
      sender.child.stdin!.end();
      // The PUSH may be left holding a message for the receiver that is gone: that is its exit 1.
      expect([0, 1]).toContain((await sender.done).code);
    }
  });
});

describe('ZeroMQ errors', () => {
  it('address in use: one line on stderr, exit 1 (input and output)', async () => {
    const port = await freePort();
    const holder = new Pull();
    await holder.bind(endpoint(port));
    try {
      for (const args of [
        zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }),
        zmqOutput({ socket_bind: endpoint(port), socket_type: 'PUSH' }),
      ]) {
        const result = await run(args);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(new RegExp(`^message-passing: zeromq (input|output): cannot bind tcp://127\\.0\\.0\\.1:${port}: address already in use \\(.+\\)\\n$`));
      }
    } finally {
      holder.close();
    }
  });

  it('a malformed endpoint or an unknown transport is a usage error, exit 2', async () => {
    for (const [role, options, expected] of [
      ['input', { socket_bind: 'tcp://127.0.0.1' }, /no port/],
      ['input', { connect: 'garbage' }, /malformed endpoint 'garbage'/],
      ['output', { connect: 'foo://127.0.0.1:5555' }, /unknown transport 'foo'/],
      ['output', { connect: 'tcp://*:5555' }, /a connect needs a host/],
      ['output', { connect: 'tcp://127.0.0.1:70000' }, /port must be a number from 1 to 65535/],
      ['input', { socket_bind: 'tcp://127.0.0.1:-1' }, /port must be a number/],
      ['output', { socket_bind: 'ipc://' }, /malformed endpoint/],
      ['input', { socket_bind: 'tcp://no-such-interface-here:5555' }, /no such network interface/],
    ] as const) {
      const result = await run(role === 'input' ? zmqInput(options) : zmqOutput(options));
      expect(result.code, `${role} ${JSON.stringify(options)}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(expected);
      expect(result.stderr.trimEnd().split('\n'), result.stderr).toHaveLength(1);
    }
  });

  it('unknown or conflicting options are usage errors, exit 2', async () => {
    const port = await freePort();
    for (const [args, expected] of [
      [zmqOutput({ connect: endpoint(port), sockettype: 'PUSH' }), /unknown option 'sockettype' \(did you mean 'socket_type'\?\)/],
      [zmqInput({ connect: endpoint(port), linger: 5 }), /unknown option 'linger'/],
      [zmqOutput({ connect: endpoint(port), socket_bind: endpoint(port) }), /either connect or socket_bind, not both/],
      [zmqInput({}), /give connect .* or socket_bind/],
      [zmqOutput({ connect: endpoint(port), socket_type: 'PULL' }), /socket_type' must be one of PUB, PUSH/],
      [zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', topic: 'logs' }), /topic applies to PUB sockets only/],
      [zmqInput({ connect: endpoint(port), socket_type: 'PULL', subscribe: 'logs' }), /subscribe applies to SUB sockets only/],
      [zmqOutput({ connect: endpoint(port), socket_hwm: -1 }), /socket_hwm' must be at least 0/],
    ] as const) {
      const result = await run(args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(expected);
    }
  });

  it('accepts Perl spellings: bind, zmq, a single endpoint string or a list', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const pull = spawned(['--input', 'zmq', '--input_options', JSON.stringify({ bind: [endpoint(a), endpoint(b)], socket_type: 'PULL' })]);
    for (const port of [a, b]) {
      const sent = await run(['--output', '+ZeroMQ', '--output_options', JSON.stringify({ connect: endpoint(port), socket_type: 'PUSH' })], { input: `{"port":${port}}\n` });
      expect(sent.code, sent.stderr).toBe(0);
    }
    await until(() => records(pull.stdout).length >= 2, 'both messages');
    expect((await stop(pull)).code).toBe(0);
    expect(records(pull.stdout).map((m) => m.port).sort()).toEqual([a, b].sort());
  });
});

describe.concurrent('a PUSH with nobody to take its messages', () => {
  /** A PUSH to a free port, where nobody listens. */
  const pushToNobody = async (linger: number) => {
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    return { endpoint, tool: start([...zmqOutput({ connect: endpoint, socket_type: 'PUSH', linger }), '--stats', '1']) };
  };
  const tenLines = range(1, 10).map((n) => `{"n":${n}}\n`).join('');

  it('says once on stderr what it waits for, counts as queued (not out) what it holds, and SIGTERM ends the run with the count left behind', async () => {
    const { endpoint, tool } = await pushToNobody(0);
    // More than the output queues before it makes the chain wait.
    tool.child.stdin!.write(Array.from({ length: 5000 }, (_, n) => `{"n":${n}}\n`).join(''));
    await tool.waitFor('stderr', `waiting for a peer on ${endpoint}`, 15_000);
    await tool.waitFor('stderr', / out=0 queued=\d+ /);
    const { code, stderr } = await stop(tool);
    expect(code).toBe(1);
    expect(stderr.match(/waiting for a peer/g)).toHaveLength(1);
    const left = /zeromq output: (\d+) messages? could not be delivered within linger \(0 ms\): no peer is connected/.exec(stderr)?.[1];
    expect(left).toBeDefined();
    // Everything read is either in the output's queue or still in the chain, which drained into it.
    expect(stderr).toContain(`stats in=${left} created=0 out=0 queued=${left} dropped=0 errors=0 `);
  });

  it('with linger -1, SIGTERM still ends the run: once nothing went out for 3 s, the count left behind and status 1', async () => {
    const { endpoint, tool } = await pushToNobody(-1);
    tool.child.stdin!.write(tenLines);
    await tool.waitFor('stderr', ' in=10 created=0 out=0 queued=10 ');
    const { code, stderr } = await stop(tool);
    expect(code).toBe(1);
    expect(stderr).toContain('stats in=10 created=0 out=0 queued=10 dropped=0 errors=0 ');
    expect(stderr).toContain(
      `zeromq output: 10 messages could not be delivered after the stop signal (none went out for 3 s): no peer is connected to the PUSH socket (${endpoint}); start the receiving side first\n`,
    );
  });

  it('a second signal ends the run at once, with status 130 for SIGINT, and says how many messages it left behind', async () => {
    const { tool } = await pushToNobody(-1);
    tool.child.stdin!.write(tenLines);
    await tool.waitFor('stderr', ' in=10 created=0 out=0 queued=10 ');
    tool.child.kill('SIGTERM');
    // Past the half second within which a signal counts as the same stop, well within the 3 s the drain waits.
    await sleep(1000);
    tool.child.kill('SIGINT');
    const { code, stderr } = await tool.done;
    expect(code).toBe(130);
    expect(stderr).toContain('message-passing: second SIGINT: stopped at once; 10 messages were left behind (10 queued in the output)\n');
    expect(stderr).not.toContain('could not be delivered');
  });
});
