// TCP and UDP inputs and outputs through the real binary: many clients, both
// framings, a server that comes late or reads slowly, what cannot be delivered,
// and Perl's Message::Passing::Socket::UDP on the other side.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, lines, listening, open, peakRss, records, sleep, stop, tracked, until, type Running } from './helpers.js';

const spawned = tracked();
const opts = (o: Record<string, unknown>) => JSON.stringify(o);

/** Lines printed so far, parsed. */
const seen = (running: Running) => running.stdout.split('\n').filter((l) => l !== '').length;

/** A plain TCP server that keeps what it receives; `reading` false holds the data in the kernel. */
function sink(port: number, reading = true): Promise<{ server: Server; received: () => string; resume: () => void; close: () => Promise<void> }> {
  let text = '';
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.setEncoding('utf8');
    if (!reading) socket.pause();
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () =>
      resolve({
        server,
        received: () => text,
        resume: () => sockets.forEach((s) => s.resume()),
        close: () => new Promise<void>((done) => {
          sockets.forEach((s) => s.destroy());
          server.close(() => done());
        }),
      }),
    ),
  );
}

describe('TCP input', () => {
  it('takes NDJSON lines from many clients at once, each in its own order', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port) })]);
    await listening(port);
    const clients = await Promise.all(Array.from({ length: 8 }, () => open(port)));
    clients.forEach((socket, c) => {
      const text = Array.from({ length: 1000 }, (_, n) => JSON.stringify({ c, n })).join('\n');
      // Cut anywhere, and the last line without LF still counts.
      socket.write(text.slice(0, 777));
      setTimeout(() => socket.end(text.slice(777)), 20);
    });
    await until(() => seen(server) >= 8000, '8000 lines', 20_000);
    const { code, stdout, stderr } = await stop(server);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const got = records(stdout);
    expect(got).toHaveLength(8000);
    for (let c = 0; c < 8; c++) expect(got.filter((r) => r.c === c).map((r) => r.n)).toEqual(Array.from({ length: 1000 }, (_, n) => n));
  });

  it('a line over max_line_length is an error record and the connection goes on; raw lines pass with --decoder Null', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: `127.0.0.1:${port}`, max_line_length: 10 }), '--decoder', 'Null', '--encoder', 'Null']);
    await listening(port);
    const socket = await open(port);
    socket.end('short\r\nthis line is too long\nafter\n');
    await server.waitFor('stdout', 'after\n');
    const { code, stdout, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(stdout).toBe('short\nafter\n');
    expect(records(stderr)).toMatchObject([{ error: 'over-long', source: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+:2$/) as unknown }]);
  });

  it('with length framing, a length over max_frame_bytes closes that connection with an error record; a frame cut by the end is truncated', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port), framing: 'length', length_bytes: 2, max_frame_bytes: 20 })]);
    await listening(port);
    const prefix = (n: number) => Buffer.from([n >> 8, n & 0xff]);
    const frame = (text: string) => Buffer.concat([prefix(Buffer.byteLength(text)), Buffer.from(text)]);
    const first = await open(port);
    const ended = new Promise<void>((resolve) => first.on('end', resolve).resume());
    first.on('error', () => undefined);
    first.write(Buffer.concat([frame('{"a":1}'), frame('{"a":2}'), prefix(1000), Buffer.from('xyz')]));
    await ended;
    const second = await open(port);
    second.end(Buffer.concat([frame('{"a":3}'), prefix(10), Buffer.from('{"b')]));
    await server.waitFor('stderr', 'truncated');
    const { code, stdout, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(records(stdout)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
    expect(records(stderr)).toMatchObject([
      { error: 'over-long', reason: 'frame length 1000 bytes is over the cap of 20 bytes', source: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+:3$/) as unknown },
      { error: 'truncated', reason: 'stream ended 3 bytes into a frame of 10 bytes', source: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+:2$/) as unknown },
    ]);
  });

  it('refuses connections past max_connections, and says so', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port), max_connections: 2 })]);
    await listening(port);
    const first = await Promise.all([open(port), open(port)]);
    const more = await Promise.all(Array.from({ length: 3 }, () => open(port).catch(() => undefined)));
    first[0]!.write('{"still":"served"}\n');
    await server.waitFor('stdout', 'served');
    await server.waitFor('stderr', 'refused');
    for (const socket of [...first, ...more]) socket?.destroy();
    const { code, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(records(stderr)[0]).toMatchObject({ error: 'connection', reason: expect.stringMatching(/refused: max_connections \(2\) are open/) as unknown, source: `tcp:127.0.0.1:${port}` });
  });

  it('an output that cannot write ends the input: exit 1 with its one line, not a connection error', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port) }), '--output', 'File', '--output_options', opts({ filename: '/dev/full' })]);
    await listening(port);
    const socket = await open(port);
    socket.on('error', () => undefined);
    socket.write('{"a":1}\n');
    const { code, stderr } = await server.done;
    expect(code).toBe(1);
    expect(stderr).toBe('message-passing: File output: cannot write to /dev/full: the disk is full\n');
  });

  it('a port in use is exit 1 with one line that says so; a malformed address is a usage error', async () => {
    const port = await freePort();
    const taken = await sink(port);
    const { code, stderr } = await spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port) })], { input: '' }).done;
    await taken.close();
    expect(code).toBe(1);
    expect(stderr).toBe(`message-passing: TCP input: cannot listen on 127.0.0.1:${port}: address already in use (another program is bound to it; stop that program or choose another port)\n`);
    const bad = await spawned(['--input', 'TCP', '--input_options', opts({ bind: 'localhost' })], { input: '' }).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^message-passing: --input TCP: bind: malformed address 'localhost' \(expected HOST:PORT/);
  });
});

describe('TCP output', () => {
  it('with length framing and the Pickle codec on both sides, messages go through whole', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'TCP', '--input_options', opts({ bind: String(port), framing: 'length' }), '--decoder', 'Pickle']);
    await listening(port);
    const input = Array.from({ length: 500 }, (_, n) => JSON.stringify({ n, text: `line\nwith ${'é'.repeat(n % 5)} breaks`, list: [n, null, true], big: 2 ** 40 + n })).join('\n') + '\n';
    const client = await spawned(['--output', 'TCP', '--output_options', opts({ connect: `127.0.0.1:${port}`, framing: 'length' }), '--encoder', 'Pickle'], { input }).done;
    expect(client.stderr).toBe('');
    expect(client.code).toBe(0);
    await until(() => seen(server) >= 500, '500 messages');
    const { stdout } = await stop(server);
    expect(lines(stdout)).toEqual(lines(input));
  });

  it('waits for a server that comes late, says so once, and delivers everything', async () => {
    const port = await freePort();
    const client = spawned(['--output', 'TCP', '--output_options', opts({ connect: `127.0.0.1:${port}`, linger: '20s' })]);
    client.child.stdin!.write('{"n":1}\n{"n":2}\n');
    await client.waitFor('stderr', 'trying again');
    const server = await sink(port);
    client.child.stdin!.end('{"n":3}\n');
    const { code, stderr } = await client.done;
    await until(() => server.received().split('\n').length > 3, 'three lines');
    await server.close();
    expect(code).toBe(0);
    expect(server.received()).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    expect(stderr).toMatch(new RegExp(`^message-passing: TCP output: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(is the server running, on that port\\?\\); trying again \\(messages wait meanwhile\\)\n`));
    expect(stderr).toContain(`TCP output: connected to 127.0.0.1:${port} again`);
  });

  it('a connection the server breaks: lost and back said once; what the kernel did not hold goes on the next one, in order', async () => {
    const port = await freePort();
    // What the kernel may hold for a connection: the sender's send buffer (at most tcp_wmem's max) and the receiver's unread bytes.
    const sysctl = (name: string, i: number) => Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[i]);
    const kernel = sysctl('tcp_wmem', 2) + sysctl('tcp_rmem', 1);
    // 2,000 numbered lines; the first 1,000, written before the break, are 1 MiB more than the kernel holds.
    const pad = 'x'.repeat(Math.ceil((kernel + (1 << 20)) / 1000));
    const lineBytes = JSON.stringify({ seq: 1000, pad }).length + 1;
    const seq = (from: number, to: number) => Array.from({ length: to - from }, (_, n) => JSON.stringify({ seq: from + n, pad }) + '\n').join('');
    // The first server reads one chunk, stops reading, breaks the connection and stops listening.
    let before = '';
    let broke = 0;
    const gone = new Promise<void>((resolve) => {
      const first = createServer((socket) => {
        socket.on('error', () => undefined);
        socket.setEncoding('utf8').on('data', (d: string) => {
          before += d;
          if (!before.includes('\n') || socket.isPaused()) return;
          socket.pause();
          setTimeout(() => {
            broke = Date.now();
            socket.destroy();
            first.close(() => resolve());
          }, 300);
        });
      });
      first.listen(port, '127.0.0.1');
    });
    const client = spawned(['--output', 'TCP', '--output_options', opts({ connect: `127.0.0.1:${port}`, linger: '10s' })]);
    client.child.stdin!.write(seq(0, 1000));
    await gone;
    await client.waitFor('stderr', 'trying again');
    client.child.stdin!.write(seq(1000, 1500));
    await sleep(1000 - (Date.now() - broke));
    const second = await sink(port);
    const back = Date.now();
    await client.waitFor('stderr', `connected to 127.0.0.1:${port} again`);
    const reconnected = Date.now() - back;
    client.child.stdin!.end(seq(1500, 2000));
    const { code, stderr } = await client.done;
    await until(() => /\{"seq":1999,[^\n]*\n$/.test(second.received()), 'the last line');
    await second.close();
    expect(code).toBe(0);
    expect(stderr).toMatch(
      new RegExp(
        `^message-passing: TCP output: lost the connection to 127\\.0\\.0\\.1:${port}: (the server closed the connection|connection reset by the peer); trying again \\(messages wait meanwhile\\)\n` +
          `message-passing: TCP output: connected to 127\\.0\\.0\\.1:${port} again\n$`,
      ),
    );
    // Tried again after 0.1, 0.3, 0.7, 1.5 s: the server, back after 1 s, is reached within 0.5 s or so.
    expect(reconnected).toBeLessThan(1200);
    // The first connection: whole lines from seq 0 on (the last one may be cut).
    const firstSeqs = before.split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(firstSeqs).toEqual(Array.from({ length: firstSeqs.length }, (_, n) => n));
    // The second: whole lines in order, from the first not handed to the kernel to the last.
    const secondSeqs = records(second.received()).map((r) => r.seq as number);
    const from = secondSeqs[0]!;
    expect(secondSeqs).toEqual(Array.from({ length: 2000 - from }, (_, n) => from + n));
    // Some lines written before the break went again; lost are only those the kernel held, a run right after the first connection's lines.
    expect(from).toBeLessThan(1000);
    const all = new Set([...firstSeqs, ...secondSeqs]);
    const missing = Array.from({ length: 2000 }, (_, n) => n).filter((n) => !all.has(n));
    expect(missing).toEqual(Array.from({ length: Math.max(0, from - firstSeqs.length) }, (_, n) => firstSeqs.length + n));
    // Give or take what the first server's stream had read ahead (64 KiB) and the kernel's last buffer past tcp_wmem.
    expect(missing.length * lineBytes).toBeLessThanOrEqual(kernel + (128 << 10));
  });

  it('a server that does not read makes the chain wait (the input stops reading, memory stays bounded), then gets every line', async () => {
    const port = await freePort();
    const server = await sink(port, false);
    const client = spawned(['--output', 'TCP', '--output_options', opts({ connect: `127.0.0.1:${port}`, linger: '50s' })], { timeout: 55_000 });
    const line = JSON.stringify({ pad: 'x'.repeat(1000) }) + '\n';
    const chunk = line.repeat(1000);
    // 20 MB offered at once; the client can take only what the kernel's socket buffers and its own queue (4 MiB) hold.
    for (let i = 0; i < 20; i++) client.child.stdin!.write(chunk);
    await sleep(1500);
    const unread = client.child.stdin!.writableLength;
    const peak = peakRss(client.child.pid!);
    server.resume();
    client.child.stdin!.end();
    const { code, stderr } = await client.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    await until(() => server.received().length === 20 * chunk.length, 'every line', 30_000);
    await server.close();
    expect(unread).toBeGreaterThan(5 << 20);
    expect(peak).toBeLessThan(150 << 20);
  });

  it('what cannot be delivered within linger is counted on stderr, exit 1', async () => {
    const port = await freePort();
    const { code, stderr } = await spawned(['--output', 'TCP', '--output_options', opts({ connect: `127.0.0.1:${port}`, linger: '200ms' })], { input: '{"a":1}\n{"a":2}\n{"a":3}\n' }).done;
    expect(code).toBe(1);
    expect(stderr.trim().split('\n').at(-1)).toBe(
      `message-passing: TCP output: 3 messages could not be delivered to 127.0.0.1:${port} within linger (200ms): cannot connect: connection refused (is the server running, on that port?)`,
    );
  });
});

describe('UDP', () => {
  it('output to input: each message one datagram; what arrives plus what the kernel dropped is what was sent', async () => {
    const port = await freePort();
    const server = spawned(['--input', 'UDP', '--input_options', opts({ port })]);
    await sleep(300);
    // The input binds at start: wait until a probe gets through.
    for (let i = 0; seen(server) === 0; i++) {
      await spawned(['--output', 'UDP', '--output_options', opts({ port })], { input: `{"probe":${i}}\n` }).done;
      await sleep(100);
      if (i > 100) throw new Error('the UDP input never answered');
    }
    const probes = seen(server);
    const input = Array.from({ length: 500 }, (_, n) => JSON.stringify({ n })).join('\n') + '\n';
    const client = await spawned(['--output', 'UDP', '--output_options', opts({ hostname: 'localhost', port })], { input }).done;
    expect(client.code).toBe(0);
    expect(client.stderr).toBe('');
    let last = -1;
    while (seen(server) !== last) {
      last = seen(server);
      await sleep(300);
    }
    const { code, stdout, stderr } = await stop(server);
    expect(code).toBe(0);
    const got = records(stdout).slice(probes);
    const dropped = Number(/the kernel dropped (\d+)/.exec(stderr)?.[1] ?? 0);
    expect(got.length + dropped).toBe(500);
    expect(new Set(got.map((r) => r.n)).size).toBe(got.length);
  });

  it('a message too big for a datagram goes to the error output, the others are sent', async () => {
    const port = await freePort();
    const big = JSON.stringify({ pad: 'x'.repeat(70_000) });
    const { code, stderr } = await spawned(['--output', 'UDP', '--output_options', opts({ port })], { input: `{"a":1}\n${big}\n{"a":2}\n` }).done;
    expect(code).toBe(0);
    expect(records(stderr)).toMatchObject([
      { error: 'output', reason: `UDP output: a message of ${big.length} bytes does not fit in a datagram (at most 65507)`, source: 'output:udp', stage: 'output UDP' },
    ]);
  });

  const perl = spawnSync('sh', ['-c', 'command -v message-pass'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!perl)("speaks with Perl's Message::Passing::Output::Socket::UDP and Input::Socket::UDP", async () => {
    const port = await freePort();
    const server = spawned(['--input', 'Socket::UDP', '--input_options', opts({ hostname: '127.0.0.1', port })]);
    const perlPort = await freePort();
    const perlServer = spawned(['--input', 'Socket::UDP', '--input_options', opts({ hostname: '127.0.0.1', port: perlPort }), '--output', 'STDOUT'], { command: 'message-pass' });
    await sleep(500);
    for (let i = 0; seen(server) === 0; i++) {
      await spawned(['--input', 'STDIN', '--output', 'Socket::UDP', '--output_options', opts({ hostname: '127.0.0.1', port })], { command: 'message-pass', input: `{"from":"perl","i":${i}}\n` }).done;
      if (i > 50) throw new Error('nothing came from Perl');
      await sleep(100);
    }
    for (let i = 0; seen(perlServer) === 0; i++) {
      await spawned(['--output', 'UDP', '--output_options', opts({ port: perlPort })], { input: `{"to":"perl","i":${i}}\n` }).done;
      if (i > 50) throw new Error('nothing reached Perl');
      await sleep(100);
    }
    const ours = await stop(server);
    perlServer.child.kill('SIGKILL');
    expect(records(ours.stdout)[0]).toMatchObject({ from: 'perl' });
    expect(records(perlServer.stdout)[0]).toMatchObject({ to: 'perl' });
  });
});
