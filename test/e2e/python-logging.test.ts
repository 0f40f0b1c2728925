// The PythonLogging input and output against Python's own logging handlers, in
// real python3 processes: SocketHandler over TCP, DatagramHandler over UDP,
// the logging cookbook's socketserver receiver, and bad input of every kind.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, listening, open, peakRss, records, sleep, stop, tempDir, tracked, until } from './helpers.js';
import { python, PYTHON } from './python.js';

const dir = tempDir();
const startTracked = tracked();
let cases = 0;
const folder = () => {
  const path = join(dir, `case-${++cases}`);
  mkdirSync(path);
  return path;
};

/** A client: `count` records from worker `worker`, alternating between two loggers, a traceback every 100th. */
const CLIENT = String.raw`
import logging, logging.handlers, sys
host, port, mode, worker, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
class Patient(logging.handlers.SocketHandler):
    # SocketHandler drops a record the server has not taken within 1 s; a loaded test machine can take longer.
    def makeSocket(self, timeout=1):
        return super().makeSocket(timeout=60)
handler = Patient(host, port) if mode == 'tcp' else logging.handlers.DatagramHandler(host, port)
root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(handler)
loggers = [logging.getLogger('app.web'), logging.getLogger('app.db')]
for i in range(count):
    logger = loggers[i % 2]
    if i % 100 == 7:
        try:
            {}['missing-\u20ac']
        except KeyError:
            logger.exception('lookup failed for caf\u00e9 \u2615 %d', i, extra={'worker': worker, 'seq': i})
    else:
        logger.info('request %d from zo\u00eb \u2014 ok', i, extra={'worker': worker, 'seq': i, 'tags': ['a', '\u00fc']})
handler.close()
`;

function runClients(port: number, mode: 'tcp' | 'udp', workers: number, count: number): Promise<void> {
  const runs = Array.from({ length: workers }, (_, worker) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(PYTHON, ['-c', CLIENT, '127.0.0.1', String(port), mode, String(worker), String(count)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => (code === 0 && stderr === '' ? resolve() : reject(new Error(`python client ${worker} exited ${code}: ${stderr}`))));
    }),
  );
  return Promise.all(runs).then(() => undefined);
}

/** The files of one logger, oldest first (NAME.N ... NAME.1, NAME), as records. */
function loggerRecords(folder: string, name: string): Array<Record<string, unknown>> {
  const old = readdirSync(folder)
    .filter((f) => f.startsWith(`${name}.`))
    .sort((a, b) => Number.parseInt(b.slice(name.length + 1), 10) - Number.parseInt(a.slice(name.length + 1), 10));
  return [...old, name].filter((f) => existsSync(join(folder, f))).flatMap((f) => records(readFileSync(join(folder, f), 'utf8')));
}

function countLines(folder: string): number {
  let count = 0;
  for (const f of readdirSync(folder)) {
    let text: Buffer;
    try {
      text = readFileSync(join(folder, f));
    } catch {
      // Rotated away meanwhile: counted at the next look.
      return -1;
    }
    for (let at = text.indexOf(10); at >= 0; at = text.indexOf(10, at + 1)) count++;
  }
  return count;
}

const WORKERS = 4;
const PER_WORKER = 2000;
const toLoggerFiles = (out: string) => ['--output', 'File', '--output_options', JSON.stringify({ filename: join(out, '%{name}.log'), rotate: { max_bytes: '256KiB' }, keep: 1000 })];

/** Every record of `all` exactly once, each worker's records in order within each logger's files, as Python sent them. */
function checkRecords(out: string, expected: number): Array<Record<string, unknown>> {
  const all: Array<Record<string, unknown>> = [];
  for (const name of ['app.web.log', 'app.db.log']) {
    const list = loggerRecords(out, name);
    const last = new Map<number, number>();
    for (const record of list) {
      expect(`${record.name}.log`).toBe(name);
      const worker = record.worker as number;
      const seq = record.seq as number;
      expect(seq, `worker ${worker} in ${name}`).toBeGreaterThan(last.get(worker) ?? -1);
      last.set(worker, seq);
    }
    all.push(...list);
  }
  const ids = new Set(all.map((r) => `${r.worker}:${r.seq}`));
  expect(ids.size).toBe(all.length);
  expect(all.length).toBe(expected);
  return all;
}

function checkFields(all: Array<Record<string, unknown>>): void {
  const failure = all.find((r) => r.seq === 107)!;
  expect(failure).toMatchObject({ name: 'app.db', msg: 'lookup failed for café ☕ 107', args: null, levelname: 'ERROR', levelno: 40, exc_info: null, funcName: '<module>' });
  expect(failure.exc_text).toMatch(/^Traceback \(most recent call last\):\n[\s\S]*KeyError: 'missing-€'$/);
  const info = all.find((r) => r.seq === 2)!;
  expect(info).toMatchObject({ name: 'app.web', msg: 'request 2 from zoë — ok', levelname: 'INFO', tags: ['a', 'ü'], processName: 'MainProcess', threadName: 'MainThread' });
  expect(Object.keys(info).slice(0, 6)).toEqual(['name', 'msg', 'args', 'levelname', 'levelno', 'pathname']);
  expect(typeof info.created).toBe('number');
}

describe('PythonLogging input', () => {
  it(`takes ${WORKERS} SocketHandler clients x ${PER_WORKER} records over TCP, one rotating file per logger, every record once`, async () => {
    const out = folder();
    const port = await freePort();
    const server = startTracked(['--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${port}` }), ...toLoggerFiles(out), '--stats', '60'], { timeout: 60_000 });
    await listening(port);
    await runClients(port, 'tcp', WORKERS, PER_WORKER);
    await until(() => countLines(out) >= WORKERS * PER_WORKER, `${WORKERS * PER_WORKER} records in ${out}`, 30_000);
    const { code, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(stderr).toMatch(new RegExp(`stats in=${WORKERS * PER_WORKER} created=0 out=${WORKERS * PER_WORKER} dropped=0 errors=0 `));
    expect(readdirSync(out).length).toBeGreaterThan(4);
    checkFields(checkRecords(out, WORKERS * PER_WORKER));
  });

  it(`takes ${WORKERS} DatagramHandler clients x ${PER_WORKER} records over UDP: what arrives plus what the kernel dropped is what was sent`, async () => {
    const out = folder();
    const tcp = await freePort();
    const port = await freePort();
    const server = startTracked(['--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${tcp}`, udp: `127.0.0.1:${port}` }), ...toLoggerFiles(out)], { timeout: 60_000 });
    await listening(tcp);
    await runClients(port, 'udp', WORKERS, PER_WORKER);
    // Datagrams are not acknowledged: wait until they stop coming.
    let seen = -1;
    while (countLines(out) !== seen) {
      seen = countLines(out);
      await sleep(500);
    }
    const { code, stderr } = await stop(server);
    expect(code).toBe(0);
    const dropped = [...stderr.matchAll(/the kernel dropped (\d+)/g)].map((m) => Number(m[1])).at(-1) ?? 0;
    const heldBack = [...stderr.matchAll(/; (\d+) came while/g)].map((m) => Number(m[1])).at(-1) ?? 0;
    if (dropped + heldBack === 0) expect(stderr).toBe('');
    const all = checkRecordsLoosely(out);
    expect(all.length + dropped + heldBack).toBe(WORKERS * PER_WORKER);
    const worker0 = all.filter((r) => r.worker === 0);
    if (worker0.some((r) => r.seq === 107) && worker0.some((r) => r.seq === 2)) checkFields(worker0);
  });

  it('runs nothing it decodes: a pickle that calls os.system("touch MARKER") is an error record, and the connection goes on', async () => {
    const cwd = folder();
    const bomb = Buffer.from(python("import os, pickle, sys\nclass P:\n    def __reduce__(self):\n        return (os.system, ('touch MARKER',))\nsys.stdout.write(pickle.dumps(P(), 1).hex())"), 'hex');
    // The same bytes given to Python's own pickle.loads do run the command: the frame is live.
    const control = folder();
    python(`import pickle, os\nos.chdir(${JSON.stringify(control)})\npickle.loads(bytes.fromhex('${bomb.toString('hex')}'))`);
    expect(existsSync(join(control, 'MARKER'))).toBe(true);

    const port = await freePort();
    const server = startTracked(['--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${port}` })], { cwd });
    await listening(port);
    const [good1, good2] = pickleRecords([1, 2].map((seq) => ({ name: 'app', msg: `good ${seq}`, seq }))).map(framed);
    const socket = await open(port);
    socket.write(Buffer.concat([good1!, framed(bomb), good2!]));
    await server.waitFor('stdout', 'good 2');
    socket.end();
    const { code, stdout, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(records(stdout).map((r) => r.msg)).toEqual(['good 1', 'good 2']);
    const [error, ...rest] = records(stderr);
    expect(rest).toEqual([]);
    expect(error).toMatchObject({ error: 'decode', encoding: 'base64' });
    expect(error!.reason).toMatch(/^PythonLogging input: refused opcode GLOBAL: it would import posix\.system; only plain data is accepted/);
    expect(error!.source).toMatch(/^tcp:127\.0\.0\.1:\d+:2$/);
    expect(Buffer.from(error!.frame as string, 'base64').equals(bomb)).toBe(true);
    expect(existsSync(join(cwd, 'MARKER'))).toBe(false);
  });

  it('bad input (random bytes, truncated pickles, a 4 GB length, a client gone mid-frame, a flood of idle connections) leaves good clients whole and memory bounded', async () => {
    const port = await freePort();
    const server = startTracked(['--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${port}`, max_connections: 30 })], { timeout: 60_000 });
    await listening(port);
    const goodClient = await open(port);
    const [record, ...goodRecords] = pickleRecords([{ name: 'x', msg: 'cut' }, ...Array.from({ length: 300 }, (_, seq) => ({ name: 'good', msg: `good ${seq}`, seq }))]);
    let sent = 0;
    const sendGood = (count: number) => {
      goodClient.write(Buffer.concat(goodRecords.slice(sent, sent + count).map(framed)));
      sent += count;
    };
    sendGood(100);

    // Random bytes inside a proper length frame, and a pickle cut short.
    const random = await open(port);
    random.write(Buffer.concat([framed(Buffer.from('not a pickle at all \x00\xff', 'latin1')), framed(record!.subarray(0, 10))]));
    // A length prefix of 4 GB: the connection is closed, nothing is allocated.
    const huge = await open(port);
    const closed = new Promise<void>((resolve) => huge.on('close', () => resolve()));
    huge.on('error', () => undefined);
    huge.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x80, 0x02]));
    await closed;
    // A client that goes away in the middle of a record.
    const quitter = await open(port);
    quitter.end(framed(record!).subarray(0, 30));
    sendGood(100);
    // More idle connections than max_connections: the extra ones are refused.
    const idle = await Promise.all(Array.from({ length: 60 }, () => open(port).catch(() => undefined)));
    sendGood(100);
    await server.waitFor('stdout', `"good ${sent - 1}"`, 20_000);
    await server.waitFor('stderr', 'refused: max_connections', 20_000);
    const peak = peakRss(server.child.pid!);
    for (const socket of [goodClient, random, ...idle]) socket?.destroy();
    const { code, stdout, stderr } = await stop(server);
    expect(code).toBe(0);
    expect(records(stdout).map((r) => r.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    const errors = records(stderr);
    const kinds = errors.map((e) => `${e.error}: ${String(e.reason).replace(/\d+/g, 'N')}`);
    expect(errors.map((e) => e.reason)).toContain('PythonLogging input: unknown opcode 0x6e (at byte 0)');
    expect(kinds).toContain('decode: PythonLogging input: the pickle is cut short in the middle of an opcode (at byte N)');
    expect(kinds).toContain('over-long: frame length N bytes is over the cap of N bytes');
    expect(kinds).toContain('truncated: stream ended N bytes into a frame of N bytes');
    expect(errors.find((e) => e.error === 'over-long')!.reason).toBe('frame length 4294967295 bytes is over the cap of 1048576 bytes');
    const refused = errors.filter((e) => e.error === 'connection');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.reason).toMatch(/^(a connection was|\d+ connections were) refused: max_connections \(30\) are open/);
    // The 4 GB frame was never allocated.
    expect(peak).toBeLessThan(200 << 20);
  });
});

describe('PythonLogging output', () => {
  it("feeds the logging cookbook's socketserver receiver the records Python sent, as SocketHandler would", async () => {
    const out = folder();
    const receiverPort = await freePort();
    const relayPort = await freePort();
    // The cookbook's receiver: length, pickle.loads, logging.makeLogRecord, handled by a logger of its own.
    const receiver = spawn(PYTHON, ['-u', '-c', RECEIVER, String(receiverPort), join(out, 'received.ndjson')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let receiverErr = '';
    receiver.stderr.on('data', (d) => (receiverErr += d));
    await listening(receiverPort).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${receiverErr}`);
    });
    const relay = startTracked([
      '--input', 'PythonLogging', '--input_options', JSON.stringify({ bind: `127.0.0.1:${relayPort}` }),
      '--output', 'PythonLogging', '--output_options', JSON.stringify({ connect: `127.0.0.1:${receiverPort}` }),
    ]);
    await listening(relayPort);
    // What the client's SocketHandler pickled, as the client itself unpickles it.
    const sent = python(SENDER, String(relayPort)).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const received = () => records(readFileSync(join(out, 'received.ndjson'), 'utf8')).filter((r) => r.record !== undefined);
    await until(() => received().length >= sent.length, 'the receiver to get every record', 20_000);
    const { code, stderr } = await stop(relay);
    receiver.kill();
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const got = received();
    expect(got.map((r) => r.record)).toEqual(sent);
    expect(Object.keys(got[1]!.record as object)).toEqual(Object.keys(sent[1]!));
    expect(got.map((r) => r.formatted)).toEqual(sent.map((r) => `${r.name} ${r.levelname} ${r.msg}${r.exc_text ? `\n${r.exc_text}` : ''}`));
  });

  it('a message that is not an object goes to the error output; what cannot be delivered is counted, exit 1', async () => {
    const port = await freePort();
    const { code, stderr } = await startTracked(['--output', 'PythonLogging', '--output_options', JSON.stringify({ connect: `127.0.0.1:${port}`, linger: '300ms' })], {
      input: '{"name":"app","msg":"no server"}\n"just text"\n',
    }).done;
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(records(lines.filter((l) => l.startsWith('{')).join('\n'))).toMatchObject([{ error: 'output', reason: 'PythonLogging output: a record is an object of log record fields; this message is a string' }]);
    expect(lines).toContain(`message-passing: PythonLogging output: cannot connect to 127.0.0.1:${port}: connection refused (is the server running, on that port?); trying again (messages wait meanwhile)`);
    expect(lines.at(-1)).toBe(
      `message-passing: PythonLogging output: 1 message could not be delivered to 127.0.0.1:${port} within linger (300ms): cannot connect: connection refused (is the server running, on that port?)`,
    );
  });
});

/** Records as a checkRecords without the order check: UDP may reorder and drop. */
function checkRecordsLoosely(out: string): Array<Record<string, unknown>> {
  const all = ['app.web.log', 'app.db.log'].flatMap((name) => loggerRecords(out, name));
  expect(new Set(all.map((r) => `${r.worker}:${r.seq}`)).size).toBe(all.length);
  return all;
}

const RECEIVER = String.raw`
import json, logging, pickle, socketserver, struct, sys

port, path = int(sys.argv[1]), sys.argv[2]
out = open(path, 'w')
formatter = logging.Formatter('%(name)s %(levelname)s %(message)s')

class LogRecordStreamHandler(socketserver.StreamRequestHandler):
    def handle(self):
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
            obj = pickle.loads(chunk)
            record = logging.makeLogRecord(obj)
            out.write(json.dumps({'record': obj, 'formatted': formatter.format(record)}) + '\n')
            out.flush()

class LogRecordSocketReceiver(socketserver.ThreadingTCPServer):
    allow_reuse_address = True

server = LogRecordSocketReceiver(('127.0.0.1', port), LogRecordStreamHandler)
out.write('{"ready": true}\n')
out.flush()
server.serve_forever()
`;

const SENDER = String.raw`
import json, logging, logging.handlers, pickle, sys

class Recording(logging.handlers.SocketHandler):
    def makePickle(self, record):
        data = super().makePickle(record)
        print(json.dumps(pickle.loads(data[4:])))
        return data

handler = Recording('127.0.0.1', int(sys.stdin.read()))
logger = logging.getLogger('cookbook.relay')
logger.propagate = False
logger.setLevel(logging.DEBUG)
logger.addHandler(handler)
logger.info('plain %s', 'text')
logger.warning('caf\u00e9 \u2615 %d%%', 50, extra={'user': 'zo\u00eb', 'ids': [1, 2], 'nested': {'k': None}})
try:
    1 / 0
except ZeroDivisionError:
    logger.exception('failed')
for i in range(200):
    logger.debug('line %d', i)
handler.close()
`;

/** Record dicts pickled as SocketHandler does (protocol 1), by python3. */
function pickleRecords(list: Array<Record<string, unknown>>): Buffer[] {
  const hex = python('import json, pickle, sys\nfor record in json.loads(sys.stdin.read()):\n    print(pickle.dumps(record, 1).hex())', JSON.stringify(list));
  return hex.trim().split('\n').map((line) => Buffer.from(line, 'hex'));
}

function framed(pickle: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(pickle.length);
  return Buffer.concat([length, pickle]);
}
