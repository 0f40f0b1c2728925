// Soak: many messages through a three-process chain over ZeroMQ, every one counted
// and checked in order at the end, with the resident memory (RSS) of each process
// sampled over time; then a consumer read at 1 MB/s while its producer pushes as
// fast as it can, memory sampled the same way.
//
//   this process -> message-passing --output ZeroMQ {connect: A, PUSH}              (producer)
//                -> message-passing --input ZeroMQ {bind: A, PULL}
//                                   --output ZeroMQ {bind: B, PUSH}                  (relay)
//                -> message-passing --input ZeroMQ {connect: B, PULL} -> stdout      (consumer)
//                -> this process: counts the lines and checks 0, 1, 2, ... in order
//
// Each process runs with --stats; its end figures must say in = out = the count.
//
// Optional in `npm run bench` (it takes a few minutes): node test/bench/run.mjs --soak,
// or BENCH_SOAK=1. Alone, after `npm run build`: node test/bench/soak.mjs [--quick]
// Environment: BENCH_SOAK_EVENTS (default 10,000,000; --quick 1,000,000),
// BENCH_SOAK_SLOW_SECONDS (default 30; --quick 8).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { endpoint, fmt, freePort, sleep } from './util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'message-passing.js');

const zmqInput = (options) => ['--input', 'ZeroMQ', '--input_options', JSON.stringify(options)];
const zmqOutput = (options) => ['--output', 'ZeroMQ', '--output_options', JSON.stringify(options)];

/** One message per line, about 100 bytes, numbered from 0. */
const line = (seq) => `{"seq":${seq},"host":"web-0${seq % 5}","level":"info","message":"GET /api/v1/orders 200","duration_ms":${seq % 1000}}\n`;

/** message-passing with `args`; stderr kept; stdout piped (or ignored). */
function mp(name, args, { stdout = 'pipe' } = {}) {
  const child = spawn(process.execPath, [BIN, ...args, '--stats', '1'], { stdio: ['pipe', stdout, 'pipe'] });
  const p = { name, child, stderr: '' };
  child.stderr.setEncoding('utf8').on('data', (text) => (p.stderr += text));
  child.stdin.on('error', () => undefined);
  p.done = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
  return p;
}

const STATS = /message-passing: stats in=(\d+) created=\d+ out=(\d+)(?: queued=\d+)? dropped=(\d+) errors=(\d+) /g;
/** The last --stats figures printed by `p`. */
function stats(p) {
  const all = [...p.stderr.matchAll(STATS)];
  const last = all.at(-1);
  return last ? { in: Number(last[1]), out: Number(last[2]), dropped: Number(last[3]), errors: Number(last[4]) } : undefined;
}

async function started(p) {
  for (const deadline = Date.now() + 20_000; !stats(p); await sleep(10)) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited ${p.child.exitCode}: ${p.stderr.slice(0, 500)}`);
    if (Date.now() > deadline) throw new Error(`${p.name} did not start: ${p.stderr.slice(0, 500)}`);
  }
}

function rssMB(pid) {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** Writes lines 0, 1, 2, ... to `stream` as fast as it takes them, until `count` or until `stop()` is true. */
async function feed(stream, count, stop = () => false) {
  let seq = 0;
  while (seq < count && !stop()) {
    let chunk = '';
    const end = Math.min(count, seq + 1000);
    for (; seq < end; seq++) chunk += line(seq);
    if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
  return seq;
}

/** Counts the lines of a byte stream and checks that their seq runs 0, 1, 2, ... */
class SequenceChecker {
  lines = 0;
  outOfOrder = 0;
  bytes = 0;
  rest = Buffer.alloc(0);
  take(chunk) {
    this.bytes += chunk.length;
    const data = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    let start = 0;
    for (let at = data.indexOf(10); at >= 0; at = data.indexOf(10, start)) {
      // {"seq":N,...: the digits after the 7-byte prefix.
      let seq = 0;
      for (let i = start + 7; data[i] >= 48 && data[i] <= 57; i++) seq = seq * 10 + data[i] - 48;
      if (seq !== this.lines) this.outOfOrder++;
      this.lines++;
      start = at + 1;
    }
    this.rest = Buffer.from(data.subarray(start));
  }
}

/** RSS of each process every `everyMs`, with what `progress()` says at that moment. */
function sampler(processes, progress, everyMs = 1000) {
  const started = performance.now();
  const rows = [];
  const take = () => rows.push({ seconds: (performance.now() - started) / 1000, ...progress(), rss: processes.map((p) => rssMB(p.child.pid)) });
  const timer = setInterval(take, everyMs);
  return {
    rows,
    /** Call while the processes still run: one last sample, unless one was just taken. */
    stop() {
      clearInterval(timer);
      if ((performance.now() - started) / 1000 - (rows.at(-1)?.seconds ?? -1) > everyMs / 2000) take();
    },
  };
}

/** About a dozen rows, evenly spread, the last one included; then the peak of each process. */
function table(title, names, rows, countLabel) {
  const step = Math.max(1, Math.ceil(rows.length / 12));
  const shown = rows.filter((_, i) => i % step === 0 || i === rows.length - 1);
  const header = ['time', countLabel, ...names.map((n) => `RSS ${n}`)];
  const body = shown.map((r) => [`${r.seconds.toFixed(0)} s`, fmt(r.count), ...r.rss.map((mb) => `${mb.toFixed(0)} MB`)]);
  const peaks = names.map((_, i) => Math.max(...rows.map((r) => r.rss[i])));
  body.push(['peak', '', ...peaks.map((mb) => `${mb.toFixed(0)} MB`)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const show = (row) => '  ' + row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(title);
  console.log(show(header));
  for (const row of body) console.log(show(row));
  return peaks;
}

function checkStats(p, expected, problems) {
  const s = stats(p);
  if (!s || s.in !== expected || s.out !== expected || s.dropped !== 0 || s.errors !== 0) {
    problems.push(`${p.name} stats ${JSON.stringify(s)}, expected in=out=${expected}`);
  }
}

async function soak(events) {
  const [relayIn, relayOut] = [await freePort(), await freePort()];
  const relay = mp('relay', [...zmqInput({ socket_bind: endpoint(relayIn), socket_type: 'PULL' }), ...zmqOutput({ socket_bind: endpoint(relayOut), socket_type: 'PUSH' })]);
  const all = [relay];
  try {
    await started(relay);
    const consumer = mp('consumer', zmqInput({ connect: endpoint(relayOut), socket_type: 'PULL' }));
    const producer = mp('producer', zmqOutput({ connect: endpoint(relayIn), socket_type: 'PUSH', linger: -1 }));
    all.push(consumer, producer);
    const checker = new SequenceChecker();
    consumer.child.stdout.on('data', (chunk) => checker.take(chunk));
    const processes = [producer, relay, consumer];
    const samples = sampler(processes, () => ({ count: checker.lines }));
    const began = performance.now();
    const fed = feed(producer.child.stdin, events);
    const progress = setInterval(() => process.stderr.isTTY && process.stderr.write(`  soak: ${fmt(checker.lines)} of ${fmt(events)}\r`), 5000);
    try {
      for (const deadline = Date.now() + 30 * 60_000; checker.lines < events; await sleep(20)) {
        for (const p of processes) if (p.child.exitCode !== null && p !== producer) throw new Error(`${p.name} exited ${p.child.exitCode}: ${p.stderr.slice(-500)}`);
        if (Date.now() > deadline) throw new Error(`timed out with ${fmt(checker.lines)} of ${fmt(events)}`);
      }
    } finally {
      clearInterval(progress);
    }
    const seconds = (performance.now() - began) / 1000;
    samples.stop();
    await fed;
    const producerStatus = await producer.done;
    relay.child.kill('SIGTERM');
    consumer.child.kill('SIGTERM');
    const statuses = [producerStatus, await relay.done, await consumer.done];
    const peaks = table(
      `soak: ${fmt(events)} messages of ~${line(events).length} bytes, producer -> relay -> consumer over tcp://127.0.0.1, RSS every second`,
      processes.map((p) => p.name),
      samples.rows,
      'received',
    );
    const problems = [];
    processes.forEach((p, i) => statuses[i] !== 0 && problems.push(`${p.name} exited ${statuses[i]}: ${p.stderr.slice(-300)}`));
    for (const p of processes) checkStats(p, events, problems);
    if (checker.lines !== events) problems.push(`received ${fmt(checker.lines)} of ${fmt(events)}`);
    if (checker.outOfOrder) problems.push(`${fmt(checker.outOfOrder)} out of order`);
    console.log(
      `soak: ${fmt(checker.lines)} of ${fmt(events)} received in ${seconds.toFixed(1)} s (${fmt(checker.lines / seconds)} msg/s), ` +
        `${problems.length === 0 ? 'exact count, in order, every --stats in = out' : `PROBLEMS: ${problems.join('; ')}`}; ` +
        `peak RSS ${processes.map((p, i) => `${p.name} ${peaks[i].toFixed(0)} MB`).join(', ')}`,
    );
    if (problems.length) throw new Error(problems.join('; '));
  } finally {
    for (const p of all) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
}

/** The consumer's stdout read at `bytesPerSecond` for `seconds` while the producer pushes as fast as it can. */
async function slowConsumer(seconds, bytesPerSecond = 1_000_000) {
  const port = await freePort();
  const consumer = mp('consumer', zmqInput({ socket_bind: endpoint(port), socket_type: 'PULL' }));
  const all = [consumer];
  try {
    await started(consumer);
    const producer = mp('producer', zmqOutput({ connect: endpoint(port), socket_type: 'PUSH', linger: -1 }));
    all.push(producer);
    const checker = new SequenceChecker();
    const stdout = consumer.child.stdout;
    // Small, frequent reads: the pipe's stream holds 64 KB at most between two of them.
    const TICK_MS = 50;
    const reading = setInterval(() => {
      let budget = (bytesPerSecond * TICK_MS) / 1000;
      for (let chunk; budget > 0 && (chunk = stdout.read(Math.min(budget, stdout.readableLength))); budget -= chunk.length) checker.take(chunk);
    }, TICK_MS);
    const processes = [producer, consumer];
    const samples = sampler(processes, () => ({ count: checker.lines }));
    let slow = true;
    const fed = feed(producer.child.stdin, Infinity, () => !slow);
    await sleep(seconds * 1000); // the slow phase lasts this long by design
    const readSlowly = checker.bytes;
    slow = false;
    clearInterval(reading);
    samples.stop();
    // Then read at full speed: every message the producer took must arrive.
    stdout.on('data', (chunk) => checker.take(chunk));
    const made = await fed;
    const producerStatus = await producer.done;
    for (const deadline = Date.now() + 120_000; checker.lines < made && Date.now() < deadline; ) await sleep(20);
    consumer.child.kill('SIGTERM');
    const consumerStatus = await consumer.done;
    const peaks = table(
      `slow consumer: stdout read at ${fmt(bytesPerSecond / 1e6)} MB/s for ${seconds} s while the producer pushes as fast as it can, RSS every second`,
      processes.map((p) => p.name),
      samples.rows,
      'read',
    );
    const problems = [];
    if (producerStatus !== 0) problems.push(`producer exited ${producerStatus}: ${producer.stderr.slice(-300)}`);
    if (consumerStatus !== 0) problems.push(`consumer exited ${consumerStatus}: ${consumer.stderr.slice(-300)}`);
    for (const p of processes) checkStats(p, made, problems);
    if (checker.lines !== made) problems.push(`received ${fmt(checker.lines)} of ${fmt(made)}`);
    if (checker.outOfOrder) problems.push(`${fmt(checker.outOfOrder)} out of order`);
    console.log(
      `slow consumer: ${(readSlowly / 1e6).toFixed(1)} MB read in ${seconds} s; then ${fmt(checker.lines)} of ${fmt(made)} messages in all, ` +
        `${problems.length === 0 ? 'exact count, in order' : `PROBLEMS: ${problems.join('; ')}`}; ` +
        `peak RSS ${processes.map((p, i) => `${p.name} ${peaks[i].toFixed(0)} MB`).join(', ')}`,
    );
    if (problems.length) throw new Error(problems.join('; '));
  } finally {
    for (const p of all) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
}

export async function run({ quick = false } = {}) {
  const events = Number(process.env.BENCH_SOAK_EVENTS ?? (quick ? 1_000_000 : 10_000_000));
  const slowSeconds = Number(process.env.BENCH_SOAK_SLOW_SECONDS ?? (quick ? 8 : 30));
  console.log(`\n== soak: node ${process.version}, ${new Date().toISOString()}`);
  await soak(events);
  console.log('');
  await slowConsumer(slowSeconds);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run({ quick: process.argv.includes('--quick') });
}
