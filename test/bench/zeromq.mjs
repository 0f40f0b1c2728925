// ZeroMQ benchmarks: the corpus through two processes over TCP on 127.0.0.1.
//
//   message-passing < corpus --output ZeroMQ {PUSH}  ->  message-passing --input ZeroMQ {PULL} > file
//
// side by side with the same chain in Perl's message-pass, a bare zeromq.js
// PUSH/PULL loop (the ceiling of one message per frame: no JSON, no chain,
// strings in and out), a Python line relay over pyzmq (lines in, lines out, no
// JSON), the chain with batch (several messages per frame), with the Null
// codecs, and PUB -> SUB. Rates are taken at the receiving
// end, from its first message to its last (start-up excluded), and every run
// is checked: the count of messages that arrived, and for message-passing with
// JSON the output byte for byte against the corpus. Each case runs REPEATS
// times, the cases taking turns so that each meets the same load; the best
// run counts (the machine is noisy). Beside the rate, the CPU time each side
// spent per message over the same span (from /proc, user + system, libzmq's
// I/O thread included): on a loaded machine a process waits for a core, and
// CPU time says what it cost where the rate says how long it took.
//
// Run with `npm run bench` (all benchmarks), or alone after `npm run build`:
//   node test/bench/zeromq.mjs [--quick]
// Environment: BENCH_EVENTS (default 1,000,000; --quick 200,000),
// BENCH_SLOW_EVENTS for Perl (default 200,000; --quick 50,000), BENCH_REPEATS (3),
// BENCH_ZMQ_CASES (ids to run, e.g. bare,mp,mp-batch,python,mp-null,pub,mp-slow,perl; default all).
// The Python relay needs pyzmq (Debian: apt-get install python3-zmq); it is
// skipped with a note without it.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile } from './corpus.mjs';
import { endpoint, fmt, freePort, sleep } from './util.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const BIN = join(ROOT, 'bin', 'message-passing.js');
const SELF = fileURLToPath(import.meta.url);
const NODE = process.execPath;

const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');

// ---------------------------------------------------------------------------
// The bare zeromq.js loop, run as this file with a role:
//   node zeromq.mjs --bare-push ENDPOINT CORPUS     sends each line, one await per send
//   node zeromq.mjs --bare-pull ENDPOINT COUNT      receives COUNT messages, prints
//                                                   {"first": ms, "last": ms} (Date.now())

async function barePush(address, corpus) {
  const zmq = createRequire(join(ROOT, 'package.json'))('zeromq');
  const lines = readFileSync(corpus, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const push = new zmq.Push({ sendHighWaterMark: 10_000, linger: 60_000 });
  push.connect(address);
  const start = process.cpuUsage();
  for (const line of lines) await push.send(line);
  const { user, system } = process.cpuUsage(start);
  push.close();
  process.stdout.write(JSON.stringify({ cpuMs: (user + system) / 1000 }) + '\n');
}

async function barePull(address, count) {
  const zmq = createRequire(join(ROOT, 'package.json'))('zeromq');
  const pull = new zmq.Pull({ receiveHighWaterMark: 10_000 });
  await pull.bind(address);
  let first;
  let cpuAtFirst;
  let received = 0;
  let bytes = 0;
  while (received < count) {
    const [message] = await pull.receive();
    if (first === undefined) {
      first = Date.now();
      cpuAtFirst = process.cpuUsage();
    }
    // What any consumer does at least: make a string of it.
    bytes += message.toString().length;
    received++;
  }
  const { user, system } = process.cpuUsage(cpuAtFirst);
  process.stdout.write(JSON.stringify({ first, last: Date.now(), received, bytes, cpuMs: (user + system) / 1000 }) + '\n');
  pull.close();
}

// ---------------------------------------------------------------------------
// The Python line relay: what a short pyzmq program does, one message per line.

const PYTHON_PUSH = `
import sys, zmq
push = zmq.Context.instance().socket(zmq.PUSH)
push.setsockopt(zmq.SNDHWM, 10000)
push.setsockopt(zmq.LINGER, 60000)
push.connect(sys.argv[1])
for line in sys.stdin.buffer:
    push.send(line[:-1] if line.endswith(b"\\n") else line)
push.close()
zmq.Context.instance().term()
`;

const PYTHON_PULL = `
import sys, zmq
pull = zmq.Context.instance().socket(zmq.PULL)
pull.setsockopt(zmq.RCVHWM, 10000)
pull.bind(sys.argv[1])
out = sys.stdout.buffer
while True:
    try:
        frame = pull.recv(zmq.NOBLOCK)
    except zmq.Again:
        out.flush()
        frame = pull.recv()
    out.write(frame + b"\\n")
`;

/** A Python 3 that has pyzmq, or why there is none. */
function pythonWithZeroMQ() {
  for (const python of ['python3', '/usr/bin/python3']) {
    if (spawnSync(python, ['-c', 'import zmq'], { stdio: 'ignore' }).status === 0) return { python };
  }
  return { skipped: 'pyzmq not installed (Debian: apt-get install python3-zmq)' };
}

// ---------------------------------------------------------------------------

function has(command) {
  return spawnSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function perlZeroMQ() {
  if (!has('message-pass')) return 'message-pass not installed';
  const ok = spawnSync('perl', ['-MMessage::Passing::Input::ZeroMQ', '-MMessage::Passing::Output::ZeroMQ', '-e1'], { stdio: 'ignore' }).status === 0;
  return ok ? undefined : "Perl's Message::Passing::ZeroMQ not installed";
}

/** True once something listens on 127.0.0.1:port (the receiver has bound): read from /proc/net/tcp. */
function listening(port) {
  try {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    return readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hex}`) && fields[3] === '0A';
    });
  } catch {
    return undefined;
  }
}

async function waitListening(port, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const state = listening(port);
    if (state === true) return;
    // Without /proc, give the receiver time to start.
    if (state === undefined) return sleep(1500);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${ms} ms`);
    await sleep(10);
  }
}

/** Follows a growing file: counts its lines, notes when the first and the last arrived. */
class LineCounter {
  constructor(path) {
    this.fd = openSync(path, 'r');
    this.buffer = Buffer.allocUnsafe(1 << 20);
    this.lines = 0;
    this.first = undefined;
    this.last = undefined;
  }
  poll() {
    for (let n; (n = readSync(this.fd, this.buffer, 0, this.buffer.length, null)) > 0; ) {
      const now = Date.now();
      this.first ??= now;
      this.last = now;
      const chunk = this.buffer.subarray(0, n);
      for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) this.lines++;
    }
    return this.lines;
  }
  close() {
    closeSync(this.fd);
  }
}

function exited(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode);
    else child.on('exit', (code, signal) => resolve(code ?? signal));
  });
}

/** CPU time a process has used so far, in ms (user + system, all its threads), or undefined once it is gone. */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime, fields 14 and 15 of the line, in clock ticks (100 a second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

function sha1(path) {
  return createHash('sha1').update(readFileSync(path)).digest('hex');
}

/**
 * One run: starts the receiver (output to a file), waits until it listens,
 * starts the sender with the corpus on stdin, then follows the file until
 * every message is there, or nothing more came for `quietMs` after the sender
 * ended (a lossy case).
 */
async function once({ receiver, sender, events, corpus, port, out, quietMs = 2000, timeoutMs = 300_000 }) {
  const outFd = openSync(out, 'w');
  const rx = spawn(receiver[0], receiver.slice(1), { stdio: ['ignore', outFd, 'pipe'] });
  closeSync(outFd);
  let rxErr = '';
  rx.stderr.on('data', (d) => (rxErr += d));
  const rxEnded = exited(rx);
  const counter = new LineCounter(out);
  let txErr = '';
  let txStatus;
  // The sender's last reading before it exits, and both sides' when the first message arrived.
  const cpu = { tx: undefined, rx: undefined, txFirst: undefined, rxFirst: undefined };
  try {
    await waitListening(port);
    const inFd = openSync(corpus, 'r');
    const tx = spawn(sender[0], sender.slice(1), { stdio: [inFd, 'ignore', 'pipe'] });
    closeSync(inFd);
    tx.stderr.on('data', (d) => (txErr += d));
    exited(tx).then((status) => (txStatus = { status, at: Date.now() }));
    const deadline = Date.now() + timeoutMs;
    while (counter.poll() < events) {
      if (rx.exitCode !== null) throw new Error(`receiver exited ${rx.exitCode}: ${rxErr.slice(0, 500)}`);
      if (txStatus && Date.now() - Math.max(txStatus.at, counter.last ?? 0) > quietMs) break;
      if (Date.now() > deadline) throw new Error(`timed out with ${counter.lines} of ${events} messages`);
      cpu.tx = cpuMs(tx.pid) ?? cpu.tx;
      if (counter.first !== undefined && cpu.rxFirst === undefined) {
        cpu.rxFirst = cpuMs(rx.pid);
        cpu.txFirst = cpu.tx;
      }
      await sleep(5);
    }
    if (!txStatus) await sleep(quietMs);
    counter.poll();
    cpu.rx = cpuMs(rx.pid);
    if (sender[0] !== 'message-pass' && txStatus && txStatus.status !== 0) {
      throw new Error(`sender exited ${txStatus.status}: ${txErr.slice(0, 500)}`);
    }
  } finally {
    rx.kill('SIGTERM');
    await rxEnded;
    counter.close();
  }
  const seconds = Math.max(1e-3, (counter.last - counter.first) / 1000);
  const perMessage = (from, to) => (from !== undefined && to !== undefined && counter.lines > 0 ? ((to - from) * 1000) / counter.lines : undefined);
  return { delivered: counter.lines, seconds, rate: counter.lines / seconds, txUs: perMessage(cpu.txFirst, cpu.tx), rxUs: perMessage(cpu.rxFirst, cpu.rx) };
}

/** The bare loop: the receiver times itself. */
async function bareOnce({ events, corpus, port }) {
  const rx = spawn(NODE, [SELF, '--bare-pull', endpoint(port), String(events)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let report = '';
  rx.stdout.on('data', (d) => (report += d));
  const rxEnded = exited(rx);
  await waitListening(port);
  const tx = spawn(NODE, [SELF, '--bare-push', endpoint(port), corpus], { stdio: ['ignore', 'pipe', 'inherit'] });
  let txReport = '';
  tx.stdout.on('data', (d) => (txReport += d));
  const [rxStatus, txStatus] = await Promise.all([rxEnded, exited(tx)]);
  if (rxStatus !== 0 || txStatus !== 0) throw new Error(`bare loop: receiver exit ${rxStatus}, sender exit ${txStatus}`);
  const { first, last, received, cpuMs: rxCpu } = JSON.parse(report);
  const { cpuMs: txCpu } = JSON.parse(txReport);
  const seconds = Math.max(1e-3, (last - first) / 1000);
  return { delivered: received, seconds, rate: received / seconds, txUs: (txCpu * 1000) / received, rxUs: (rxCpu * 1000) / received };
}

/** One run of a case, checked; the best rate and the least CPU per message of its runs are kept in `best`. */
async function measureOnce(testCase, dir, best) {
  const port = await freePort();
  const out = join(dir, 'out.ndjson');
  const run = testCase.bare
    ? await bareOnce({ events: testCase.events, corpus: testCase.corpus, port })
    : await once({ ...testCase.build(endpoint(port)), events: testCase.events, corpus: testCase.corpus, port, out });
  if (testCase.exact) {
    if (run.delivered !== testCase.events) throw new Error(`${testCase.name}: ${run.delivered} of ${testCase.events} messages arrived`);
    if (!testCase.bare && (statSync(out).size !== statSync(testCase.corpus).size || sha1(out) !== sha1(testCase.corpus))) {
      throw new Error(`${testCase.name}: the output differs from the corpus`);
    }
  }
  rmSync(out, { force: true });
  const least = (a, b) => (a === undefined ? b : b === undefined ? a : Math.min(a, b));
  if (!best.rate || run.rate > best.rate) Object.assign(best, { delivered: run.delivered, seconds: run.seconds, rate: run.rate });
  best.txUs = least(best.txUs, run.txUs);
  best.rxUs = least(best.rxUs, run.rxUs);
  return best;
}

function table(results) {
  const rows = [['case', 'events', 'delivered', 'msg/s', 'vs bare zeromq.js', 'vs pyzmq relay', 'vs Perl', 'CPU µs/msg send+receive']];
  const bare = results.find((r) => r.id === 'bare' && !r.skipped);
  const python = results.find((r) => r.id === 'python' && !r.skipped);
  const perl = results.find((r) => r.id === 'perl' && !r.skipped);
  for (const r of results) {
    if (r.skipped) {
      rows.push([r.name, '-', '-', `skipped: ${r.skipped}`, '', '', '', '']);
      continue;
    }
    rows.push([
      r.name,
      fmt(r.events),
      r.delivered === r.events ? 'all' : `${fmt(r.delivered)} (${((100 * r.delivered) / r.events).toFixed(1)}%)`,
      fmt(r.rate),
      ratio(r.rate, bare?.rate),
      ratio(r.rate, python?.rate),
      ratio(r.rate, perl?.rate),
      r.txUs !== undefined && r.rxUs !== undefined ? `${r.txUs.toFixed(2)} + ${r.rxUs.toFixed(2)} = ${(r.txUs + r.rxUs).toFixed(2)}` : '-',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ')).join('\n');
}

export async function run({ quick = process.argv.includes('--quick') } = {}) {
  const events = Number(process.env.BENCH_EVENTS ?? (quick ? 200_000 : 1_000_000));
  const slowEvents = Number(process.env.BENCH_SLOW_EVENTS ?? (quick ? 50_000 : 200_000));
  const repeats = Number(process.env.BENCH_REPEATS ?? 3);
  const corpus = corpusFile(events);
  const slowCorpus = corpusFile(slowEvents);
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mp-bench-zmq-'));
  const mp = (...args) => [NODE, BIN, ...args];
  const opts = (o) => JSON.stringify(o);
  const NULL = ['--decoder', 'Null', '--encoder', 'Null'];
  const pushPull = (extra, outputOptions = {}) => (address) => ({
    sender: mp('--output', 'ZeroMQ', '--output_options', opts({ connect: address, socket_type: 'PUSH', ...outputOptions }), ...extra),
    receiver: mp('--input', 'ZeroMQ', '--input_options', opts({ socket_bind: address, socket_type: 'PULL' }), ...extra),
  });
  const perlSkip = perlZeroMQ();
  const pyzmq = pythonWithZeroMQ();
  const cases = [
    { id: 'bare', name: 'bare zeromq.js PUSH -> PULL (one message per frame)', events, corpus, exact: true, bare: true },
    { id: 'mp', name: 'message-passing PUSH -> PULL (JSON)', events, corpus, exact: true, build: pushPull([]) },
    { id: 'mp-batch', name: 'message-passing PUSH -> PULL (JSON, batch)', events, corpus, exact: true, build: pushPull([], { batch: true }) },
    {
      id: 'python',
      name: 'pyzmq line relay PUSH -> PULL (Python, no JSON)',
      events,
      corpus,
      exact: true,
      skipped: pyzmq.skipped,
      build: (address) => ({
        sender: [pyzmq.python, '-c', PYTHON_PUSH, address],
        receiver: [pyzmq.python, '-c', PYTHON_PULL, address],
      }),
    },
    { id: 'mp-null', name: 'message-passing PUSH -> PULL (Null codecs)', events, corpus, exact: true, build: pushPull(NULL) },
    {
      id: 'pub',
      name: 'message-passing PUB -> SUB (JSON; lossy)',
      events,
      corpus,
      build: (address) => ({
        sender: mp('--output', 'ZeroMQ', '--output_options', opts({ connect: address })),
        receiver: mp('--input', 'ZeroMQ', '--input_options', opts({ socket_bind: address })),
      }),
    },
    {
      id: 'mp-slow',
      name: 'message-passing PUSH -> PULL (JSON), Perl-sized',
      events: slowEvents,
      corpus: slowCorpus,
      exact: true,
      build: pushPull([]),
    },
    {
      id: 'perl',
      name: "Perl message-pass PUSH -> PULL (JSON)",
      events: slowEvents,
      corpus: slowCorpus,
      skipped: perlSkip,
      build: (address) => ({
        sender: ['message-pass', '--input', 'STDIN', '--output', 'ZeroMQ', '--output_options', opts({ connect: address, socket_type: 'PUSH' })],
        receiver: ['message-pass', '--input', 'ZeroMQ', '--input_options', opts({ socket_bind: address, socket_type: 'PULL' }), '--output', 'STDOUT'],
      }),
    },
  ];
  console.log(
    `\n== zeromq: ${fmt(events)} events of ~${Math.round(readFileSync(corpusFile(1000)).length / 1000)} bytes (Perl: ${fmt(slowEvents)}), ` +
      `two processes over tcp://127.0.0.1, best of ${repeats}, rate from the first message received to the last, node ${process.version}`,
  );
  const only = process.env.BENCH_ZMQ_CASES?.split(',');
  const chosen = only ? cases.filter((c) => only.includes(c.id)) : cases;
  const results = chosen.map((c) => (c.skipped ? c : { ...c }));
  try {
    // Round after round, each case once per round: a busy spell of the machine falls on all of them alike.
    for (let round = 0; round < repeats; round++) {
      for (const r of results) {
        if (r.skipped || (r.id === 'perl' && round > 0)) continue;
        process.stderr.write(`  ${r.name} (${round + 1}/${repeats}) ...`);
        const before = r.rate;
        await measureOnce(r, dir, r);
        process.stderr.write(` ${fmt(r.rate)} msg/s${r.rate === before ? ' (best before)' : ''}\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(table(results));
  const byId = Object.fromEntries(results.map((r) => [r.id, r]));
  const { mp: ours, 'mp-slow': oursSlow, perl, bare, python, 'mp-batch': batched } = byId;
  if (ours && oursSlow) console.log(
    `targets: end to end >= 250,000 msg/s with zero loss: ${fmt(ours.rate)} msg/s, ${ours.delivered === ours.events ? 'no loss' : 'LOSS'} -> ${ours.rate >= 250_000 && ours.delivered === ours.events ? 'met' : 'not met'}` +
      (perl?.rate
        ? `; >= 5x Perl: ${ratio(oursSlow.rate, perl.rate)} at ${fmt(slowEvents)} events -> ${oursSlow.rate >= 5 * perl.rate ? 'met' : 'not met'}` +
          (perl.delivered < perl.events ? ` (Perl lost ${fmt(perl.events - perl.delivered)}: its PUSH has linger 0)` : '')
        : ''),
  );
  const met = (ok) => (ok ? 'met' : 'not met');
  const exact = (r) => r.delivered === r.events;
  const cpu = (r) => (r?.txUs !== undefined && r?.rxUs !== undefined ? r.txUs + r.rxUs : undefined);
  const cpuRatio = (a, b) => (cpu(a) && cpu(b) ? `${(cpu(b) / cpu(a)).toFixed(2)}x` : '-');
  if (batched && ours) {
    console.log(
      `targets: batch >= 3x unbatched: ${ratio(batched.rate, ours.rate)} -> ${met(batched.rate >= 3 * ours.rate && exact(batched))}` +
        (python?.rate ? `; batch >= pyzmq line relay: ${ratio(batched.rate, python.rate)} -> ${met(batched.rate >= python.rate && exact(batched))}` : '') +
        (bare?.rate ? `; unbatched >= 0.9x bare zeromq.js: ${ratio(ours.rate, bare.rate)} -> ${met(ours.rate >= 0.9 * bare.rate)}` : ''),
    );
    console.log(
      `CPU per message, less is better (the other's CPU / batch's): batch vs unbatched ${cpuRatio(batched, ours)}` +
        (python ? `, batch vs pyzmq relay ${cpuRatio(batched, python)}` : '') +
        (bare ? `; unbatched vs bare zeromq.js ${cpuRatio(ours, bare)}` : ''),
    );
  }
  console.log('commands (corpus on stdin of the sender, receiver output to a file):');
  for (const c of results) {
    if (c.skipped) continue;
    if (c.bare) console.log(`  ${c.name.padEnd(52)} node test/bench/zeromq.mjs --bare-pull / --bare-push`);
    else {
      const { sender, receiver } = c.build(endpoint('PORT'));
      const show = (argv) =>
        argv
          .map((a) => (a === NODE ? 'node' : a === BIN ? 'bin/message-passing.js' : a === PYTHON_PUSH || a === PYTHON_PULL ? '<relay in test/bench/zeromq.mjs>' : /[\s{"]/.test(a) ? `'${a}'` : a))
          .join(' ');
      console.log(`  ${c.name.padEnd(52)} ${show(receiver)} > out   &   ${show(sender)} < corpus`);
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--bare-push') await barePush(process.argv[3], process.argv[4]);
  else if (process.argv[2] === '--bare-pull') await barePull(process.argv[3], Number(process.argv[4]));
  else await run();
}
