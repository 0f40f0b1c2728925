// ZeroMQ benchmarks: the corpus through two processes over TCP on 127.0.0.1.
//
//   message-passing < corpus --output ZeroMQ {PUSH}  ->  message-passing --input ZeroMQ {PULL} > file
//
// side by side with the same chain in Perl's message-pass, a bare zeromq.js
// PUSH/PULL loop (the ceiling: no JSON, no chain, strings in and out), the
// chain with the Null codecs, and PUB -> SUB. Rates are taken at the receiving
// end, from its first message to its last (start-up excluded), and every run
// is checked: the count of messages that arrived, and for message-passing with
// JSON the output byte for byte against the corpus. Each case runs REPEATS
// times; the best run counts (the machine is noisy).
//
// Run with `npm run bench` (all benchmarks), or alone after `npm run build`:
//   node test/bench/zeromq.mjs [--quick]
// Environment: BENCH_EVENTS (default 1,000,000; --quick 200,000),
// BENCH_SLOW_EVENTS for Perl (default 200,000; --quick 50,000), BENCH_REPEATS (3),
// BENCH_ZMQ_CASES (ids to run, e.g. mp,mp-null,bare,pub,mp-slow,perl; default all).
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
  for (const line of lines) await push.send(line);
  push.close();
}

async function barePull(address, count) {
  const zmq = createRequire(join(ROOT, 'package.json'))('zeromq');
  const pull = new zmq.Pull({ receiveHighWaterMark: 10_000 });
  await pull.bind(address);
  let first;
  let received = 0;
  let bytes = 0;
  while (received < count) {
    const [message] = await pull.receive();
    first ??= Date.now();
    // What any consumer does at least: make a string of it.
    bytes += message.toString().length;
    received++;
  }
  process.stdout.write(JSON.stringify({ first, last: Date.now(), received, bytes }) + '\n');
  pull.close();
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
      await sleep(5);
    }
    if (!txStatus) await sleep(quietMs);
    counter.poll();
    if (sender[0] !== 'message-pass' && txStatus && txStatus.status !== 0) {
      throw new Error(`sender exited ${txStatus.status}: ${txErr.slice(0, 500)}`);
    }
  } finally {
    rx.kill('SIGTERM');
    await rxEnded;
    counter.close();
  }
  const seconds = Math.max(1e-3, (counter.last - counter.first) / 1000);
  return { delivered: counter.lines, seconds, rate: counter.lines / seconds };
}

/** The bare loop: the receiver times itself. */
async function bareOnce({ events, corpus, port }) {
  const rx = spawn(NODE, [SELF, '--bare-pull', endpoint(port), String(events)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let report = '';
  rx.stdout.on('data', (d) => (report += d));
  const rxEnded = exited(rx);
  await waitListening(port);
  const tx = spawn(NODE, [SELF, '--bare-push', endpoint(port), corpus], { stdio: ['ignore', 'ignore', 'inherit'] });
  const [rxStatus, txStatus] = await Promise.all([rxEnded, exited(tx)]);
  if (rxStatus !== 0 || txStatus !== 0) throw new Error(`bare loop: receiver exit ${rxStatus}, sender exit ${txStatus}`);
  const { first, last, received } = JSON.parse(report);
  const seconds = Math.max(1e-3, (last - first) / 1000);
  return { delivered: received, seconds, rate: received / seconds };
}

async function measure(testCase, repeats, dir) {
  let best;
  for (let i = 0; i < repeats; i++) {
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
    if (!best || run.rate > best.rate) best = run;
  }
  rmSync(join(dir, 'out.ndjson'), { force: true });
  return { ...testCase, ...best };
}

function table(results) {
  const rows = [['case', 'events', 'delivered', 'msg/s', 'vs bare zeromq.js', 'vs Perl']];
  const bare = results.find((r) => r.id === 'bare' && !r.skipped);
  const perl = results.find((r) => r.id === 'perl' && !r.skipped);
  for (const r of results) {
    if (r.skipped) {
      rows.push([r.name, '-', '-', `skipped: ${r.skipped}`, '', '']);
      continue;
    }
    rows.push([
      r.name,
      fmt(r.events),
      r.delivered === r.events ? 'all' : `${fmt(r.delivered)} (${((100 * r.delivered) / r.events).toFixed(1)}%)`,
      fmt(r.rate),
      ratio(r.rate, bare?.rate),
      ratio(r.rate, perl?.rate),
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
  const pushPull = (extra) => (address) => ({
    sender: mp('--output', 'ZeroMQ', '--output_options', opts({ connect: address, socket_type: 'PUSH' }), ...extra),
    receiver: mp('--input', 'ZeroMQ', '--input_options', opts({ socket_bind: address, socket_type: 'PULL' }), ...extra),
  });
  const perlSkip = perlZeroMQ();
  const cases = [
    { id: 'mp', name: 'message-passing PUSH -> PULL (JSON)', events, corpus, exact: true, build: pushPull([]) },
    { id: 'mp-null', name: 'message-passing PUSH -> PULL (Null codecs)', events, corpus, exact: true, build: pushPull(NULL) },
    { id: 'bare', name: 'bare zeromq.js PUSH -> PULL (ceiling)', events, corpus, exact: true, bare: true },
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
  const results = [];
  try {
    for (const c of only ? cases.filter((c) => only.includes(c.id)) : cases) {
      if (c.skipped) {
        results.push(c);
        continue;
      }
      process.stderr.write(`  ${c.name} ...`);
      const r = await measure(c, c.id === 'perl' ? 1 : repeats, dir);
      process.stderr.write(` ${fmt(r.rate)} msg/s\n`);
      results.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(table(results));
  const byId = Object.fromEntries(results.map((r) => [r.id, r]));
  const { mp: ours, 'mp-slow': oursSlow, perl } = byId;
  if (ours && oursSlow) console.log(
    `targets: end to end >= 250,000 msg/s with zero loss: ${fmt(ours.rate)} msg/s, ${ours.delivered === ours.events ? 'no loss' : 'LOSS'} -> ${ours.rate >= 250_000 && ours.delivered === ours.events ? 'met' : 'not met'}` +
      (perl?.rate
        ? `; >= 5x Perl: ${ratio(oursSlow.rate, perl.rate)} at ${fmt(slowEvents)} events -> ${oursSlow.rate >= 5 * perl.rate ? 'met' : 'not met'}` +
          (perl.delivered < perl.events ? ` (Perl lost ${fmt(perl.events - perl.delivered)}: its PUSH has linger 0)` : '')
        : ''),
  );
  console.log('commands (corpus on stdin of the sender, receiver output to a file):');
  for (const c of results) {
    if (c.skipped) continue;
    if (c.bare) console.log(`  ${c.name.padEnd(52)} node test/bench/zeromq.mjs --bare-pull / --bare-push`);
    else {
      const { sender, receiver } = c.build(endpoint('PORT'));
      const show = (argv) => argv.map((a) => (a === NODE ? 'node' : a === BIN ? 'bin/message-passing.js' : /[\s{"]/.test(a) ? `'${a}'` : a)).join(' ');
      console.log(`  ${c.name.padEnd(52)} ${show(receiver)} > out   &   ${show(sender)} < corpus`);
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--bare-push') await barePush(process.argv[3], process.argv[4]);
  else if (process.argv[2] === '--bare-pull') await barePull(process.argv[3], Number(process.argv[4]));
  else await run();
}
