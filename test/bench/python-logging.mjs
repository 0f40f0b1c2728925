// Python logging benchmarks: message-passing as the log server Python apps
// speak to (logging.handlers.SocketHandler), beside the logging cookbook's
// socketserver receiver (the classic server: pickle.loads, makeLogRecord, a
// FileHandler), on the same records.
//
// 1. Receiver throughput: a pre-encoded stream of SocketHandler frames (made
//    by python3's own handler), sent at once over 4 connections; the rate is
//    taken from the first byte sent until the server has counted the last
//    record (--stats), with the server's CPU time per record beside it.
// 2. End to end: 4 real python3 processes logging through SocketHandler.
// 3. Memory: resident size of the server at rest, with 1,000 idle
//    connections, and once each of them has sent a record.
// 4. Lines over a socket: the LineFramer the TCP input uses, beside split2.
//
// Run with `npm run bench` (all benchmarks), or alone after `npm run build`:
//   node test/bench/python-logging.mjs [--quick]
// Environment: BENCH_PY_RECORDS (receiver stream, default 400,000; --quick 100,000),
// BENCH_PY_CLIENT_RECORDS (per Python client, default 10,000; --quick 2,500),
// BENCH_REPEATS (3), BENCH_PY_CASES (parts to run: receiver,clients,idle,lines; default all).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { event } from './corpus.mjs';
import { fmt, freePort, sleep } from './util.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const BIN = join(ROOT, 'bin', 'message-passing.js');
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const CLIENTS = 4;
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(1)}x` : '-');

/** The interpreter itself: a version manager's shim costs ~300 ms per start. */
function python() {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** Distinct SocketHandler frames made by python3: INFO lines with extra fields, a traceback every 100th, three loggers. */
const MAKE_FRAMES = String.raw`
import logging, logging.handlers, sys
count, path = int(sys.argv[1]), sys.argv[2]
out = open(path, 'wb')
class Capture(logging.handlers.SocketHandler):
    def send(self, s):
        out.write(s)
handler = Capture('127.0.0.1', 9)
loggers = [logging.getLogger(name) for name in ('app.web', 'app.db', 'app.auth')]
for logger in loggers:
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
for i in range(count):
    logger = loggers[i % 3]
    if i % 100 == 7:
        try:
            {}['missing']
        except KeyError:
            logger.exception('lookup failed for user %s', 'zo\u00eb', extra={'request_id': 'r%d' % i})
    else:
        logger.info('GET /api/items/%d 200 %.1fms', i, i % 97 / 3, extra={'request_id': 'r%d' % i, 'user': 'u%d' % (i % 50)})
out.close()
`;

/** A client: `count` records through SocketHandler, as in test/e2e/python-logging.test.ts. */
const CLIENT = String.raw`
import logging, logging.handlers, sys
port, worker, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Patient(logging.handlers.SocketHandler):
    # SocketHandler drops a record the server has not taken within 1 s; a loaded machine can take longer.
    def makeSocket(self, timeout=1):
        return super().makeSocket(timeout=60)
handler = Patient('127.0.0.1', port)
loggers = [logging.getLogger('app.web'), logging.getLogger('app.db')]
for logger in loggers:
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
for i in range(count):
    logger = loggers[i % 2]
    if i % 100 == 7:
        try:
            {}['missing']
        except KeyError:
            logger.exception('lookup failed for caf\u00e9 %d', i, extra={'worker': worker, 'seq': i})
    else:
        logger.info('request %d from zo\u00eb ok', i, extra={'worker': worker, 'seq': i})
handler.close()
`;

/**
 * The logging cookbook's network receiver: a ThreadingTCPServer whose handler
 * reads the length, unpickles, makes a LogRecord and hands it to a logger that
 * writes a file. It prints "done" once it has handled `count` records.
 */
const CLASSIC = String.raw`
import logging, pickle, socketserver, struct, sys, threading
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
logging.basicConfig(filename=path, format='%(relativeCreated)5d %(name)-15s %(levelname)-8s %(message)s')
handled = 0
lock = threading.Lock()

class LogRecordStreamHandler(socketserver.StreamRequestHandler):
    def handle(self):
        global handled
        while True:
            chunk = self.connection.recv(4)
            # The cookbook takes one recv for the 4-byte length; a length cut in two would drop the connection.
            while 0 < len(chunk) < 4:
                more = self.connection.recv(4 - len(chunk))
                if not more:
                    break
                chunk += more
            if len(chunk) < 4:
                break
            slen = struct.unpack('>L', chunk)[0]
            chunk = self.connection.recv(slen)
            while len(chunk) < slen:
                chunk = chunk + self.connection.recv(slen - len(chunk))
            record = logging.makeLogRecord(pickle.loads(chunk))
            logging.getLogger(record.name).handle(record)
            with lock:
                handled += 1
                if handled == count:
                    print('done', flush=True)

class LogRecordSocketReceiver(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 2048

print('ready', flush=True)
LogRecordSocketReceiver(('127.0.0.1', port), LogRecordStreamHandler).serve_forever()
`;

/** CPU seconds a process has used (user + system), from /proc (Linux). */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Resident and peak resident memory of a process, in MB (Linux). */
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function listening(port) {
  for (const deadline = Date.now() + 30_000; ; await sleep(50)) {
    const ok = await new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
  }
}

/** message-passing with the PythonLogging input on `port`, stats every 50 ms: `reached(n)` resolves once `in` is n. */
function startServer(port, args) {
  const child = spawn(process.execPath, [BIN, '--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${port}` }), ...args, '--stats', '0.05'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let count = 0;
  const waiters = [];
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr += d;
    const last = [...stderr.slice(-4000).matchAll(/stats in=(\d+)/g)].at(-1);
    if (last) count = Number(last[1]);
    for (const w of waiters.splice(0)) if (!w()) waiters.push(w);
    if (stderr.length > 1 << 20) stderr = stderr.slice(-4000);
  });
  const closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    reached: (n, ms = 300_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server stuck at ${count} of ${n} records: ${stderr.slice(-500)}`)), ms);
        const check = () => {
          if (count < n) return false;
          clearTimeout(timer);
          resolve(performance.now());
          return true;
        };
        if (!check()) waiters.push(check);
      }),
    async stop() {
      child.kill('SIGTERM');
      const code = await closed;
      const errors = stderr.split('\n').filter((l) => l !== '' && !l.includes(' stats '));
      if (code !== 0 || errors.length > 0) throw new Error(`server exited ${code}: ${errors.slice(0, 3).join(' | ')}`);
    },
  };
}

/** The classic receiver on `port`, expecting `count` records: `done` resolves with the time the last was handled. */
async function startClassic(py, port, count, path) {
  const child = spawn(py, ['-c', CLASSIC, String(port), String(count), path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('done')) resolve(performance.now());
    });
    child.on('close', (code) => reject(new Error(`classic receiver exited ${code}: ${err.slice(-300)}`)));
    setTimeout(() => reject(new Error(`classic receiver: not all ${count} records came within 5 minutes`)), 300_000).unref();
  });
  done.catch(() => undefined);
  await listening(port);
  return { child, done, stop: () => child.kill('SIGKILL') };
}

/** Sends `parts` (one buffer per connection) at once; resolves when all is written. */
function send(port, parts) {
  return Promise.all(
    parts.map(
      (part) =>
        new Promise((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port }, () => socket.end(part));
          socket.on('close', resolve);
          socket.on('error', reject);
        }),
    ),
  );
}

/** The stream of `count` frames cut into one part per connection, at frame boundaries. */
function streamParts(frames, count) {
  const parts = Array.from({ length: CLIENTS }, () => []);
  for (let i = 0; i < count; i++) parts[i % CLIENTS].push(frames[i % frames.length]);
  return parts.map((list) => Buffer.concat(list));
}

function readFrames(path) {
  const data = readFileSync(path);
  const frames = [];
  for (let at = 0; at < data.length; ) {
    const length = data.readUInt32BE(at);
    frames.push(data.subarray(at, at + 4 + length));
    at += 4 + length;
  }
  return frames;
}

async function receiverThroughput(py, work, quick) {
  const records = Number(process.env.BENCH_PY_RECORDS ?? (quick ? 100_000 : 400_000));
  const classicRecords = Math.min(records, quick ? 10_000 : 30_000);
  const frames = readFrames(join(work, 'frames.bin'));
  const bytes = frames.reduce((sum, f) => sum + f.length, 0) / frames.length;
  const parts = streamParts(frames, records);
  console.log(`\n== Receiver throughput: ${fmt(records)} SocketHandler records (${Math.round(bytes)} bytes each on average, 1 in 100 with a traceback) sent at once over ${CLIENTS} connections`);

  const cases = [
    { id: 'null', label: 'PythonLogging -> Null', args: ['--output', 'Null'] },
    { id: 'file', label: 'PythonLogging -> File (one file)', args: ['--output', 'File', '--output_options', JSON.stringify({ filename: join(work, 'all.log') })] },
    {
      id: 'per-logger',
      label: 'PythonLogging -> File per logger, rotating',
      args: ['--output', 'File', '--output_options', JSON.stringify({ filename: join(work, 'logs', '%{name}.log'), mkdir: true, rotate: { max_bytes: '64MiB' }, keep: 3 })],
    },
    { id: 'pickle', label: 'PythonLogging --decoder Pickle -> Null (records as objects)', args: ['--decoder', 'Pickle', '--output', 'Null'] },
  ];
  const best = {};
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    for (const c of cases) {
      rmSync(join(work, 'logs'), { recursive: true, force: true });
      rmSync(join(work, 'all.log'), { force: true });
      const port = await freePort();
      const server = startServer(port, c.args);
      await listening(port);
      const cpu = cpuSeconds(server.child.pid);
      const started = performance.now();
      await send(port, parts);
      const ended = await server.reached(records);
      const used = cpuSeconds(server.child.pid) - cpu;
      await server.stop();
      const rate = records / ((ended - started) / 1000);
      if (!best[c.id] || rate > best[c.id].rate) best[c.id] = { rate, cpuUs: (used * 1e6) / records };
    }
    const port = await freePort();
    const classic = await startClassic(py, port, classicRecords, join(work, 'classic.log'));
    const started = performance.now();
    await send(port, streamParts(frames, classicRecords));
    const ended = await classic.done;
    const used = cpuSeconds(classic.child.pid);
    classic.stop();
    const rate = classicRecords / ((ended - started) / 1000);
    if (!best.classic || rate > best.classic.rate) best.classic = { rate, cpuUs: (used * 1e6) / classicRecords, note: `${fmt(classicRecords)} records; CPU from its start` };
  }
  const rows = [...cases, { id: 'classic', label: "the logging cookbook's socketserver receiver (python3)" }];
  console.log('| Case | records/s | CPU µs/record | vs the classic receiver |');
  console.log('| --- | --- | --- | --- |');
  for (const row of rows) {
    const r = best[row.id];
    console.log(`| ${row.label} | ${fmt(r.rate)} | ${r.cpuUs.toFixed(1)} | ${row.id === 'classic' ? `1x (${r.note})` : ratio(r.rate, best.classic.rate)} |`);
  }
}

async function endToEnd(py, work, quick) {
  const perClient = Number(process.env.BENCH_PY_CLIENT_RECORDS ?? (quick ? 2_500 : 10_000));
  const total = perClient * CLIENTS;
  console.log(`\n== End to end: ${CLIENTS} python3 processes x ${fmt(perClient)} records through SocketHandler (from their start to the last record written)`);
  const runClients = (port) =>
    Promise.all(
      Array.from({ length: CLIENTS }, (_, worker) =>
        new Promise((resolve, reject) => {
          const child = spawn(py, ['-c', CLIENT, String(port), String(worker), String(perClient)], { stdio: 'ignore' });
          child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`python client exited ${code}`))));
        }),
      ),
    );
  const best = {};
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    rmSync(join(work, 'logs'), { recursive: true, force: true });
    let port = await freePort();
    const server = startServer(port, ['--output', 'File', '--output_options', JSON.stringify({ filename: join(work, 'logs', '%{name}.log'), mkdir: true, rotate: { max_bytes: '64MiB' } })]);
    await listening(port);
    let started = performance.now();
    await runClients(port);
    const ended = await server.reached(total);
    await server.stop();
    best.mp = Math.max(best.mp ?? 0, total / ((ended - started) / 1000));

    port = await freePort();
    const classic = await startClassic(py, port, total, join(work, 'classic.log'));
    started = performance.now();
    await runClients(port);
    const classicEnded = await classic.done;
    classic.stop();
    best.classic = Math.max(best.classic ?? 0, total / ((classicEnded - started) / 1000));
  }
  console.log('| Receiver | records/s | vs the classic receiver |');
  console.log('| --- | --- | --- |');
  console.log(`| message-passing: PythonLogging -> File per logger, rotating | ${fmt(best.mp)} | ${ratio(best.mp, best.classic)} |`);
  console.log(`| the logging cookbook's socketserver receiver | ${fmt(best.classic)} | 1x |`);
}

async function idleConnections(py, work) {
  const connections = 1000;
  console.log(`\n== Memory with ${fmt(connections)} idle connections (resident MB; peak in brackets)`);
  const measure = async (label, start) => {
    const port = await freePort();
    const server = await start(port);
    await sleep(500);
    const rest = memory(server.pid);
    const sockets = [];
    for (let i = 0; i < connections; i++) {
      sockets.push(
        await new Promise((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
          socket.on('error', reject);
        }),
      );
    }
    await sleep(1000);
    const idle = memory(server.pid);
    const [frame] = readFrames(join(work, 'frames.bin'));
    for (const socket of sockets) socket.write(frame);
    await sleep(1500);
    const busy = memory(server.pid);
    for (const socket of sockets) socket.destroy();
    return { label, rest, idle, busy, stop: server.stop };
  };
  const rows = [];
  const ours = await measure('message-passing PythonLogging -> Null', async (port) => {
    const server = startServer(port, ['--output', 'Null']);
    await listening(port);
    return { pid: server.child.pid, stop: () => server.stop() };
  });
  await ours.stop();
  rows.push(ours);
  const classic = await measure("the cookbook's receiver (a thread per connection)", async (port) => {
    const receiver = await startClassic(py, port, Number.MAX_SAFE_INTEGER, join(work, 'classic.log'));
    return { pid: receiver.child.pid, stop: async () => receiver.stop() };
  });
  await classic.stop();
  rows.push(classic);
  const mb = (m) => `${m.rss.toFixed(0)} (${m.peak.toFixed(0)})`;
  console.log('| Server | at rest | 1,000 idle connections | each sent one record |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.label} | ${mb(r.rest)} | ${mb(r.idle)} | ${mb(r.busy)} |`);
}

/**
 * NDJSON lines arriving on a socket, cut by the LineFramer the TCP input uses
 * (lines to strings, handed on per chunk) and by split2 (a Transform stream,
 * one push per line): both end with one string per line.
 */
async function linesOverSocket(quick) {
  const count = quick ? 300_000 : 1_000_000;
  const text = Buffer.from(Array.from({ length: count }, (_, i) => event(i)).join('\n') + '\n');
  const { LineFramer } = await import(pathToFileURL(join(ROOT, 'dist', 'io', 'line-framer.js')).href);
  const { readStream } = await import(pathToFileURL(join(ROOT, 'dist', 'io', 'reader.js')).href);
  const { default: split2 } = await import('split2');
  console.log(`\n== Lines over a TCP socket: ${fmt(count)} NDJSON lines of ~${Math.round(text.length / count)} bytes, each made a string`);
  const variants = {
    LineFramer: (socket, done) => {
      let seen = 0;
      const sink = {
        form: 'text',
        frames: (frames) => {
          seen += frames.length;
        },
        problem: () => undefined,
      };
      void readStream(socket, new LineFramer(sink, 1 << 20), new AbortController().signal).then(() => done(seen));
    },
    split2: (socket, done) => {
      let seen = 0;
      socket
        .pipe(split2({ maxLength: 1 << 20 }))
        .on('data', () => seen++)
        .on('end', () => done(seen));
    },
  };
  const best = {};
  // A first round of each, not counted: both are measured warm, as in a long-running server.
  for (let repeat = -1; repeat < REPEATS; repeat++) {
    for (const [name, read] of Object.entries(variants)) {
      const port = await freePort();
      const result = await new Promise((resolve) => {
        const server = createServer((socket) => {
          const started = performance.now();
          read(socket, (seen) => {
            server.close();
            resolve({ seen, seconds: (performance.now() - started) / 1000 });
          });
        });
        server.listen(port, '127.0.0.1', () => {
          const client = connect({ host: '127.0.0.1', port }, () => client.end(text));
        });
      });
      if (result.seen !== count) throw new Error(`${name} counted ${result.seen} lines of ${count}`);
      if (repeat >= 0) best[name] = Math.max(best[name] ?? 0, count / result.seconds);
    }
  }
  console.log('| Reader | lines/s | vs split2 |');
  console.log('| --- | --- | --- |');
  for (const name of Object.keys(variants)) console.log(`| ${name} | ${fmt(best[name])} | ${ratio(best[name], best.split2)} |`);
}

export async function run({ quick = false } = {}) {
  const py = python();
  const work = mkdtempSync(join(tmpdir(), 'mp-bench-python-'));
  const parts = (process.env.BENCH_PY_CASES ?? 'receiver,clients,idle,lines').split(',');
  try {
    if (!py) {
      console.log('\n== Python logging: skipped, python3 is not on PATH');
    } else {
      execFileSync(py, ['-c', MAKE_FRAMES, '20000', join(work, 'frames.bin')]);
      if (parts.includes('receiver')) await receiverThroughput(py, work, quick);
      if (parts.includes('clients')) await endToEnd(py, work, quick);
      if (parts.includes('idle')) await idleConnections(py, work);
    }
    if (parts.includes('lines')) await linesOverSocket(quick);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run({ quick: process.argv.includes('--quick') });
