// Filter benchmarks: Parse (PYTHON_LOGGING) and Multiline (python preset) over
// Python log lines, side by side with the `--filter Null` JSON path over the core
// corpus, in one run; then peak RSS of Multiline with 1M distinct keys.
//
// Rates are input lines per second, best of BENCH_REPEATS (3) runs, stdin from a
// file and stdout to a file whose lines are counted to check each run.
// Run with `npm run bench` (all benchmarks), or alone after `npm run build`:
//   node test/bench/filters.mjs [--quick]
// Environment: BENCH_EVENTS (default 1,000,000; --quick 200,000), BENCH_REPEATS (3).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cachedLines, corpusFile } from './corpus.mjs';
import { fmt } from './util.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '..', '..', 'bin', 'message-passing.js');
const NODE = process.execPath;
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const opts = (o) => JSON.stringify(o);

const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARNING', 'INFO'];
const LOGGERS = ['shop.api', 'shop.pay', 'shop.db', 'worker'];
const MESSAGES = [
  'GET /api/v1/orders 200 in 12ms',
  'user 4417 logged in from 10.1.2.3',
  'cache miss for key session:8c1f, loading from primary',
  'slow query detected: SELECT * FROM orders WHERE id = 7 (412ms)',
  'payment provider timeout, retrying in 250ms',
  'POST /api/v1/cart 201 in 31ms',
];
/** Every TRACEBACK_EVERY-th record is an ERROR with a 4-line traceback: 4 / (37 + 4), about 10% of lines continue a record. */
const TRACEBACK_EVERY = 37;
const TRACEBACK = [
  'Traceback (most recent call last):',
  '  File "/srv/shop/api.py", line 120, in handle',
  '    return charge(order)',
  'ValueError: card declined by issuer',
];

/**
 * A file of Python log lines ('%(asctime)s - %(levelname)s - %(name)s - %(message)s'),
 * `lines` long, cached; returns its path and how many records it holds.
 */
function pythonCorpus(lines) {
  const dir = join(tmpdir(), 'message-passing-bench');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `python-${lines}.log`);
  let records = 0;
  let block = [];
  let written = 0;
  const fd = existsSync(path) ? undefined : openSync(`${path}.${process.pid}.partial`, 'w');
  for (let i = 0; written < lines; i++) {
    const time = new Date(Date.UTC(2026, 10, 22) + i * 7).toISOString().replace('T', ' ').replace('Z', '').replace('.', ',');
    const traceback = i % TRACEBACK_EVERY === TRACEBACK_EVERY - 1 && written + 1 + TRACEBACK.length <= lines;
    const level = traceback ? 'ERROR' : LEVELS[i % LEVELS.length];
    block.push(`${time} - ${level} - ${LOGGERS[i % LOGGERS.length]} - ${MESSAGES[i % MESSAGES.length]}`);
    if (traceback) block.push(...TRACEBACK);
    written += traceback ? 1 + TRACEBACK.length : 1;
    records++;
    if (fd !== undefined && block.length >= 10_000) {
      writeSync(fd, block.join('\n') + '\n');
      block = [];
    } else if (fd === undefined) block = [];
  }
  if (fd !== undefined) {
    if (block.length) writeSync(fd, block.join('\n') + '\n');
    closeSync(fd);
    renameSync(`${path}.${process.pid}.partial`, path);
  }
  return { path, records };
}

/** JSON lines each with its own key `k`: Multiline keyed by `k` holds one record per line until max_keys pushes it out. */
function distinctKeysCorpus(lines) {
  return cachedLines(`keys-${lines}.ndjson`, lines, (i) =>
    JSON.stringify({ k: `host-${i}`, level: LEVELS[i % LEVELS.length], message: MESSAGES[i % MESSAGES.length] }),
  );
}

function countLines(path) {
  const fd = openSync(path, 'r');
  const buffer = Buffer.allocUnsafe(1 << 20);
  let lines = 0;
  try {
    for (let n; (n = readSync(fd, buffer, 0, buffer.length, null)) > 0; ) {
      for (let at = buffer.indexOf(10); at >= 0 && at < n; at = buffer.indexOf(10, at + 1)) lines++;
    }
  } finally {
    closeSync(fd);
  }
  return lines;
}

/** One run of message-passing with `args`, stdin from `input`, stdout to `output`: seconds, peak RSS (KiB), lines written. */
function once(args, input, output) {
  const argv = TIME ? [TIME, '-f', '%M', NODE, BIN, ...args] : [NODE, BIN, ...args];
  const stdin = openSync(input, 'r');
  const stdout = openSync(output, 'w');
  const started = performance.now();
  const result = spawnSync(argv[0], argv.slice(1), { stdio: [stdin, stdout, 'pipe'], maxBuffer: 1 << 26 });
  const seconds = (performance.now() - started) / 1000;
  closeSync(stdin);
  closeSync(stdout);
  const stderr = result.stderr.toString().trimEnd().split('\n');
  const rss = TIME ? Number(stderr.pop()) : undefined;
  if (result.status !== 0) throw new Error(`message-passing ${args.join(' ')}: exit ${result.status ?? result.signal}: ${stderr.join('\n').slice(0, 500)}`);
  return { seconds, rss, written: countLines(output) };
}

/** Best of `repeats`; checks every run wrote `expected` lines. */
function measure(name, args, input, lines, expected, repeats, output) {
  process.stderr.write(`  ${name} ...`);
  let best;
  let rss = 0;
  for (let i = 0; i < repeats; i++) {
    const run = once(args, input, output);
    if (run.written !== expected) throw new Error(`${name}: ${run.written} lines out, expected ${expected}`);
    if (!best || run.seconds < best.seconds) best = run;
    rss = Math.max(rss, run.rss ?? 0);
  }
  const rate = lines / best.seconds;
  process.stderr.write(` ${fmt(rate)} lines/s\n`);
  return { name, args, rate, rss };
}

const mb = (kib) => (kib ? `${Math.round(kib / 1024)} MB` : '-');

export async function run({ quick = process.argv.includes('--quick') } = {}) {
  const events = Number(process.env.BENCH_EVENTS ?? (quick ? 200_000 : 1_000_000));
  const repeats = Number(process.env.BENCH_REPEATS ?? 3);
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mp-bench-'));
  const output = join(dir, 'out');
  const stale = !existsSync(join(HERE, '..', '..', 'dist', 'message-passing.cjs')) ||
    statSync(join(HERE, '..', '..', 'dist', 'message-passing.cjs')).mtimeMs < statSync(join(HERE, '..', '..', 'dist', 'cli', 'main.js')).mtimeMs;
  const json = corpusFile(events);
  const python = pythonCorpus(events);
  console.log(
    `\n== filters: ${fmt(events)} lines each (Python log: ${fmt(python.records)} records, ` +
      `${((1 - python.records / events) * 100).toFixed(1)}% continuation lines), best of ${repeats}, stdout to a file, node ${process.version}` +
      (stale ? ', running dist/ modules (the bundle is older)' : ''),
  );
  try {
    const PARSE = ['--filter', 'Parse', '--filter_options', opts({ pattern: '%{PYTHON_LOGGING}', on_mismatch: 'pass' })];
    const MULTILINE = ['--filter', 'Multiline', '--filter_options', opts({ preset: 'python' })];
    const cases = [
      measure('--filter Null, JSON in and out (the reference)', ['--filter', 'Null'], json, events, events, repeats, output),
      measure('Parse %{PYTHON_LOGGING}, lines in, JSON out', ['--decoder', 'Null', ...PARSE], python.path, events, events, repeats, output),
      measure('Multiline python preset, lines in, JSON strings out', ['--decoder', 'Null', ...MULTILINE], python.path, events, python.records, repeats, output),
      measure('Parse then Multiline, lines in, JSON out', ['--decoder', 'Null', ...PARSE, ...MULTILINE], python.path, events, python.records, repeats, output),
    ];
    const reference = cases[0].rate;
    const rows = [['case', 'lines/s', 'vs --filter Null', 'peak RSS'], ...cases.map((c) => [c.name, fmt(c.rate), `${(c.rate / reference).toFixed(2)}x`, mb(c.rss)])];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    console.log(rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n'));
    console.log('commands (corpus on stdin, stdout to a file):');
    for (const c of cases) console.log(`  message-passing ${c.args.map((a) => (a.startsWith('{') ? `'${a}'` : a)).join(' ')}`);

    const keys = distinctKeysCorpus(events);
    console.log(`memory: ${fmt(events)} JSON lines, each with its own key k (peak RSS from /usr/bin/time; held records are bounded by max_keys):`);
    const keyed = (maxKeys) => ['--filter', 'Multiline', '--filter_options', opts({ continue: '^\\s', key: 'k', max_keys: maxKeys })];
    for (const [label, args] of [
      ['--filter Null (no state)', ['--filter', 'Null']],
      ['Multiline key k, max_keys 10,000 (default)', keyed(10_000)],
      ['Multiline key k, max_keys 100,000', keyed(100_000)],
    ]) {
      const r = measure(label, args, keys, events, events, 1, output);
      console.log(`  ${label.padEnd(44)} peak RSS ${mb(r.rss).padStart(7)}   ${fmt(r.rate)} lines/s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();
