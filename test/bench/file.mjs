// File benchmarks: File -> JSON -> File over the corpus, beside `cat` and Perl's
// message-pass, and follow mode keeping up with a fast writer (throughput and lag).
// Run with `npm run bench`, or alone after `npm run build`: node test/bench/file.mjs
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile, event } from './corpus.mjs';

const BIN = fileURLToPath(new URL('../../bin/message-passing.js', import.meta.url));
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
/** Perl is much slower: a slice of the corpus keeps its run short. */
const PERL_EVENTS = Number(process.env.BENCH_PERL_EVENTS ?? 100_000);
const FOLLOW_RATE = Number(process.env.BENCH_FOLLOW_RATE ?? 100_000);
const FOLLOW_SECONDS = Number(process.env.BENCH_FOLLOW_SECONDS ?? 3);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const options = (o) => JSON.stringify(o);
const rate = (count, seconds) => `${Math.round(count / seconds).toLocaleString('en-US')} msg/s`;

/** Counts the lines of a file as it grows, reading only what is new. */
class LineCounter {
  constructor(path) {
    this.path = path;
    this.offset = 0;
    this.lines = 0;
    this.buffer = Buffer.allocUnsafe(1 << 20);
  }
  update() {
    let fd;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return this.lines;
    }
    try {
      for (;;) {
        const n = readSync(fd, this.buffer, 0, this.buffer.length, this.offset);
        if (n === 0) break;
        this.offset += n;
        for (let at = this.buffer.indexOf(10); at >= 0 && at < n; at = this.buffer.indexOf(10, at + 1)) this.lines++;
      }
    } finally {
      closeSync(fd);
    }
    return this.lines;
  }
}

function hasPerl() {
  return spawnSync('message-pass', ['--help'], { stdio: 'ignore' }).error === undefined;
}

/** Runs a command to its end; returns seconds taken. */
function timed(command, args, stdoutPath) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const out = stdoutPath ? openSync(stdoutPath, 'w') : 'ignore';
    const child = spawn(command, args, { stdio: ['ignore', out, 'pipe'] });
    if (typeof out === 'number') closeSync(out);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 300)}`));
      else resolve((performance.now() - started) / 1000);
    });
  });
}

/** Starts a long-running follower in its own process group, so its children (tail) end with it. */
function startFollower(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  return {
    stderr: () => stderr,
    async stop() {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 5000);
      const result = await done;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Writes a probe line until the follower shows it is reading, since it starts at an unknown moment. */
async function waitUntilFollowing(input, counter, ms = 15_000) {
  const end = Date.now() + ms;
  while (counter.update() === 0) {
    if (Date.now() > end) throw new Error('the follower never started reading');
    writeFileSync(input, event(0) + '\n', { flag: 'a' });
    await sleep(300);
  }
  await sleep(300);
  return counter.update();
}

async function fileToFile(work, corpus) {
  const rows = [];
  const out = join(work, 'out.ndjson');

  const catSeconds = await timed('cat', [corpus], out);
  rows.push({ what: 'cat corpus > out', seconds: catSeconds, count: new LineCounter(out).update() });

  for (const [label, codecs] of [
    ['message-passing File -> JSON -> File', []],
    ['message-passing File -> Null -> File (raw)', ['--decoder', 'Null', '--encoder', 'Null']],
  ]) {
    rmSync(out, { force: true });
    const seconds = await timed(process.execPath, [
      BIN,
      '--input', 'File', '--input_options', options({ filename: corpus }),
      ...codecs,
      '--output', 'File', '--output_options', options({ filename: out, append: false }),
    ]);
    rows.push({ what: label, seconds, count: new LineCounter(out).update() });
  }
  for (const row of rows) row.expected = EVENTS;

  if (!hasPerl()) {
    rows.push({ what: 'Perl message-pass: skipped (message-pass not installed)' });
    return rows;
  }
  // Perl's only file input is FileTail (tail -F, which starts at the last 10 lines):
  // it follows an empty file while a slice of the corpus is appended at once.
  const input = join(work, 'perl-in.ndjson');
  const perlOut = join(work, 'perl-out.ndjson');
  writeFileSync(input, '');
  rmSync(perlOut, { force: true });
  const perl = startFollower('message-pass', [
    '--input', 'FileTail', '--input_options', options({ filename: input, raw: 1 }),
    '--output', 'File', '--output_options', options({ filename: perlOut }),
  ]);
  const counter = new LineCounter(perlOut);
  try {
    const probes = await waitUntilFollowing(input, counter);
    const slice = Array.from({ length: PERL_EVENTS }, (_, i) => event(i) + '\n').join('');
    const started = performance.now();
    writeFileSync(input, slice, { flag: 'a' });
    const deadline = Date.now() + 120_000;
    while (counter.update() < probes + PERL_EVENTS && Date.now() < deadline) await sleep(20);
    rows.push({
      what: `Perl message-pass FileTail -> JSON -> File (${PERL_EVENTS.toLocaleString('en-US')} events appended)`,
      seconds: (performance.now() - started) / 1000,
      count: counter.update() - probes,
      expected: PERL_EVENTS,
    });
  } finally {
    await perl.stop();
  }
  return rows;
}

/**
 * A writer appends FOLLOW_RATE lines a second for FOLLOW_SECONDS; the follower's
 * output is watched. Lag: from the last append to the last line in the output.
 */
async function followRun(work, name, command, args, input, output, ready) {
  const total = FOLLOW_RATE * FOLLOW_SECONDS;
  const lines = Array.from({ length: total }, (_, i) => event(i) + '\n');
  writeFileSync(input, '');
  rmSync(output, { force: true });
  const follower = startFollower(command, args);
  const counter = new LineCounter(output);
  try {
    const probes = await ready(input, counter);
    const fd = openSync(input, 'a');
    const started = performance.now();
    let written = 0;
    let lastAppend = started;
    while (written < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * FOLLOW_RATE));
      if (due > written) {
        writeSync(fd, lines.slice(written, due).join(''));
        written = due;
        lastAppend = performance.now();
      }
      if (written < total) await sleep(5);
    }
    closeSync(fd);
    const deadline = Date.now() + 60_000;
    while (counter.update() < probes + total && Date.now() < deadline) await sleep(2);
    const lastLine = performance.now();
    const count = counter.update() - probes;
    return {
      what: `${name}: follow a writer at ${FOLLOW_RATE.toLocaleString('en-US')} lines/s for ${FOLLOW_SECONDS} s`,
      seconds: (lastLine - started) / 1000,
      count,
      expected: total,
      lag: count === total ? `${Math.round(lastLine - lastAppend)} ms` : 'did not catch up within 60 s',
    };
  } finally {
    const { stderr } = await follower.stop();
    if (stderr.trim()) console.log(`  (${name} stderr: ${stderr.trim().split('\n')[0]})`);
  }
}

async function follow(work) {
  const rows = [];
  const input = join(work, 'follow-in.ndjson');
  const output = join(work, 'follow-out.ndjson');
  rows.push(
    await followRun(work, 'message-passing FileTail -> JSON -> File', process.execPath, [
      BIN,
      '--input', 'FileTail', '--input_options', options({ filename: input }),
      '--output', 'File', '--output_options', options({ filename: output }),
    ], input, output, waitUntilFollowing),
  );
  if (hasPerl()) {
    rows.push(
      await followRun(work, 'Perl message-pass FileTail -> JSON -> File', 'message-pass', [
        '--input', 'FileTail', '--input_options', options({ filename: input, raw: 1 }),
        '--output', 'File', '--output_options', options({ filename: output }),
      ], input, output, waitUntilFollowing),
    );
  } else rows.push({ what: 'Perl follow: skipped (message-pass not installed)' });
  return rows;
}

function print(title, rows) {
  console.log(`\n${title}`);
  for (const row of rows) {
    if (row.seconds === undefined) {
      console.log(`  ${row.what}`);
      continue;
    }
    const check = row.count === row.expected ? 'count ok' : `COUNT MISMATCH ${row.count}/${row.expected}`;
    const lag = row.lag ? `, lag ${row.lag}` : '';
    console.log(`  ${row.what}: ${row.seconds.toFixed(2)} s, ${rate(row.count, row.seconds)}${lag} (${check})`);
  }
}

export async function run() {
  const corpus = corpusFile(EVENTS);
  const work = mkdtempSync(join(tmpdir(), 'mp-bench-file-'));
  try {
    const sizeMB = (statSync(corpus).size / 1e6).toFixed(0);
    const copy = await fileToFile(work, corpus);
    print(`File -> File over ${EVENTS.toLocaleString('en-US')} events (${sizeMB} MB)`, copy);
    const tail = await follow(work);
    print('Follow mode (tail -F) keeping up with a writer', tail);
    return [...copy, ...tail];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();
