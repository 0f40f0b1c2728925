// Core benchmarks: STDIN -> JSON -> STDOUT and the raw pass-through (Null codecs),
// side by side with cat, jq, Perl's message-pass, a minimal hand-written Node loop
// and split2; then start-up time and memory with a slow reader.
//
// Each case runs with the corpus on stdin (a file, or a pipe from cat where said)
// and stdout to a file, whose lines are counted to check the run; wall time is
// taken around the spawn, peak RSS from /usr/bin/time -f %M. Each case runs
// REPEATS times and the best run counts: the machine is noisy.
//
// Run with `npm run bench` (all benchmarks), or alone after `npm run build`:
//   node test/bench/core.mjs [--quick]
// Environment: BENCH_EVENTS (default 1,000,000; --quick 200,000),
// BENCH_SLOW_EVENTS for jq and Perl (default 200,000; --quick 50,000), BENCH_REPEATS (3).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile } from './corpus.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '..', '..', 'bin', 'message-passing.js');
const BASELINE = join(HERE, 'baseline.mjs');
const NODE = process.execPath;
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');

/** Runs `cmd args` under /usr/bin/time; returns wall seconds, peak RSS (KiB), status, stderr. */
function timed(cmd, args, stdin, stdout) {
  const argv = TIME ? [TIME, '-f', '%M', cmd, ...args] : [cmd, ...args];
  const started = performance.now();
  const result = spawnSync(argv[0], argv.slice(1), { stdio: [stdin, stdout, 'pipe'], maxBuffer: 1 << 26 });
  const seconds = (performance.now() - started) / 1000;
  let stderr = result.stderr?.toString() ?? '';
  let rss;
  if (TIME) {
    const lines = stderr.trimEnd().split('\n');
    rss = Number(lines.pop());
    stderr = lines.join('\n');
  }
  return { seconds, rss, status: result.status, signal: result.signal, stderr };
}

function countLines(path) {
  const fd = openSync(path, 'r');
  const buffer = Buffer.allocUnsafe(1 << 20);
  let lines = 0;
  try {
    for (let n; (n = readSync(fd, buffer, 0, buffer.length, null)) > 0; ) {
      const chunk = n === buffer.length ? buffer : buffer.subarray(0, n);
      for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) lines++;
    }
  } finally {
    closeSync(fd);
  }
  return lines;
}

/** Best of `repeats` runs of one case; throws when a run fails or loses lines. */
function measure(testCase, repeats, outPath) {
  let best;
  let peakRss;
  for (let i = 0; i < repeats; i++) {
    const input = openSync(testCase.input, 'r');
    const output = openSync(outPath, 'w');
    let run;
    try {
      const [cmd, ...args] = testCase.pipe ? ['/bin/sh', '-c', `cat "$0" | ${testCase.pipe}`, testCase.input] : testCase.argv;
      run = timed(cmd, args, input, output);
    } finally {
      closeSync(input);
      closeSync(output);
    }
    if (run.status !== 0) throw new Error(`${testCase.name}: exit ${run.status ?? run.signal}: ${run.stderr.slice(0, 500)}`);
    const lines = countLines(outPath);
    if (lines !== testCase.events) throw new Error(`${testCase.name}: ${lines} lines out of ${testCase.events}`);
    if (!best || run.seconds < best.seconds) best = run;
    if (run.rss) peakRss = Math.max(peakRss ?? 0, run.rss);
  }
  return { ...testCase, seconds: best.seconds, rss: peakRss, rate: testCase.events / best.seconds };
}

function has(command) {
  return spawnSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function table(results) {
  const rows = [['case', 'events', 'msg/s', 'vs node loop', 'vs Perl', 'peak RSS']];
  for (const r of results) {
    if (r.skipped) {
      rows.push([r.name, '-', `skipped: ${r.skipped}`, '', '', '']);
      continue;
    }
    const floor = results.find((x) => x.id === r.floor && !x.skipped);
    const perl = results.find((x) => x.id === r.perl && !x.skipped);
    rows.push([
      r.name,
      fmt(r.events),
      fmt(r.rate),
      r.id === r.floor ? '1.00x' : ratio(r.rate, floor?.rate),
      r.id === r.perl ? '1.00x' : ratio(r.rate, perl?.rate),
      r.rss ? `${Math.round(r.rss / 1024)} MB` : '-',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ')).join('\n');
}

/** Throughput cases: JSON and raw, side by side. */
function throughput({ events, slowEvents, repeats, dir }) {
  const corpus = corpusFile(events);
  const slowCorpus = corpusFile(slowEvents);
  const node = (...args) => [NODE, ...args];
  const json = { floor: 'loop-json', perl: 'perl-json' };
  const raw = { floor: 'loop-lines', perl: 'perl-null' };
  const NULL = ['--decoder', 'Null', '--encoder', 'Null'];
  const perlArgs = ['--input', 'STDIN', '--output', 'STDOUT'];
  const cases = [
    { id: 'mp-json', name: 'message-passing (JSON)', argv: node(BIN), ...json },
    { id: 'mp-json-pipe', name: 'message-passing (JSON), stdin a pipe', pipe: `"${NODE}" "${BIN}"`, ...json },
    // A filter makes every line be decoded and encoded: the cost of the chain itself.
    { id: 'mp-json-filter', name: 'message-passing --filter Null (decoded)', argv: node(BIN, '--filter', 'Null'), ...json },
    { id: 'loop-json', name: 'node loop + JSON (floor)', argv: node(BASELINE, 'loop', 'json'), ...json },
    { id: 'split2-json', name: 'node split2 + JSON', argv: node(BASELINE, 'split2', 'json'), ...json },
    { id: 'jq', name: 'jq -c .', argv: ['jq', '-c', '.'], slow: true, needs: 'jq', ...json },
    { id: 'perl-json', name: "Perl message-pass (JSON)", argv: ['message-pass', ...perlArgs], slow: true, needs: 'message-pass', ...json },
    { id: 'mp-null', name: 'message-passing --decoder/--encoder Null', argv: node(BIN, ...NULL), ...raw },
    { id: 'mp-null-pipe', name: 'message-passing Null, stdin a pipe', pipe: `"${NODE}" "${BIN}" ${NULL.join(' ')}`, ...raw },
    { id: 'loop-lines', name: 'node loop, lines only (floor)', argv: node(BASELINE, 'loop', 'lines'), ...raw },
    { id: 'split2-lines', name: 'node split2, lines only', argv: node(BASELINE, 'split2', 'lines'), ...raw },
    { id: 'perl-null', name: 'Perl message-pass (Null)', argv: ['message-pass', ...perlArgs, ...NULL], slow: true, needs: 'message-pass', ...raw },
    { id: 'cat', name: 'cat', argv: ['cat'], ...raw },
  ];
  const out = join(dir, 'out.ndjson');
  const results = [];
  for (const c of cases) {
    if (c.needs && !has(c.needs)) {
      results.push({ ...c, skipped: `${c.needs} not installed` });
      continue;
    }
    const n = c.slow ? slowEvents : events;
    process.stderr.write(`  ${c.name} ...`);
    const r = measure({ ...c, input: c.slow ? slowCorpus : corpus, events: n }, repeats, out);
    process.stderr.write(` ${fmt(r.rate)} msg/s\n`);
    results.push(r);
  }
  rmSync(out, { force: true });
  return results;
}

/** Start-up: `echo '{}' | message-passing` beside `echo '{}' | node -e 0`, in ms. */
function startup({ runs }) {
  const commands = [`echo '{}' | "${NODE}" -e 0`, `echo '{}' | "${NODE}" "${BIN}"`, `"${NODE}" "${BIN}" < /dev/null`];
  const labels = ['node -e 0', "echo '{}' | message-passing", 'message-passing < /dev/null'];
  let how;
  let stats;
  if (has('hyperfine')) {
    const file = join(mkdtempSync(join(tmpdir(), 'mp-bench-')), 'hyperfine.json');
    const result = spawnSync('hyperfine', ['--warmup', '5', '--runs', String(runs), '--style', 'none', '--output', 'null', '--export-json', file, ...commands], { stdio: 'ignore' });
    if (result.status === 0) {
      how = `hyperfine --warmup 5 --runs ${runs} (shell start-up subtracted)`;
      stats = JSON.parse(readFileSync(file, 'utf8')).results.map((r) => ({ median: r.median * 1000, mean: r.mean * 1000, min: r.min * 1000 }));
    }
    rmSync(dirname(file), { recursive: true, force: true });
  }
  if (!stats) {
    how = `${runs} runs each, interleaved, through /bin/sh`;
    const times = commands.map(() => []);
    for (let i = 0; i < runs; i++) {
      commands.forEach((command, c) => {
        const started = performance.now();
        spawnSync('/bin/sh', ['-c', command], { stdio: 'ignore' });
        times[c].push(performance.now() - started);
      });
    }
    stats = times.map((t) => {
      t.sort((a, b) => a - b);
      return { median: t[t.length >> 1], mean: t.reduce((a, b) => a + b, 0) / t.length, min: t[0] };
    });
  }
  const lines = [`start-up, ${how}:`];
  stats.forEach((s, i) => {
    const over = i === 0 ? '' : `   overhead over node -e 0: median ${(s.median - stats[0].median).toFixed(1)} ms, min ${(s.min - stats[0].min).toFixed(1)} ms`;
    lines.push(`  ${labels[i].padEnd(30)} median ${s.median.toFixed(1)} ms  mean ${s.mean.toFixed(1)} ms  min ${s.min.toFixed(1)} ms${over}`);
  });
  return lines.join('\n');
}

/** Peak RSS while stdout is read slowly (~2 MB/s): memory must stay bounded. */
async function slowReader({ events, seconds }) {
  const corpus = corpusFile(events);
  const lines = [`memory with a slow reader (stdout drained at ~2 MB/s for ${seconds} s, VmRSS sampled every 100 ms):`];
  for (const [label, args, piped] of [
    ['JSON', [], false],
    ['Null', ['--decoder', 'Null', '--encoder', 'Null'], false],
    ['JSON, stdin a pipe', [], true],
  ]) {
    // Piped: from cat through a pipe, which message-passing reads through Node's stream.
    const feeder = piped ? spawn('cat', [corpus], { stdio: ['ignore', 'pipe', 'ignore'] }) : undefined;
    const input = feeder ? feeder.stdout : openSync(corpus, 'r');
    const child = spawn(NODE, [BIN, ...args], { stdio: [input, 'pipe', 'ignore'] });
    if (feeder) feeder.stdout.destroy();
    else closeSync(input);
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
    const samples = [];
    let read = 0;
    const reader = setInterval(() => {
      for (let budget = 40_000, chunk; budget > 0 && (chunk = child.stdout.read()) !== null; budget -= chunk.length) read += chunk.length;
    }, 20);
    child.stdout.pause();
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
        if (kb) samples.push(kb);
      } catch {
        break;
      }
    }
    clearInterval(reader);
    // A closed pipe ends message-passing quietly (exit 0).
    child.stdout.destroy();
    const status = await exited;
    feeder?.kill();
    const mb = (kb) => `${Math.round(kb / 1024)} MB`;
    const first = samples.slice(0, 5);
    lines.push(
      samples.length === 0
        ? `  ${label}: no samples (no /proc?)`
        : `  ${label.padEnd(18)} peak ${mb(Math.max(...samples))}, after 0.5 s ${mb(Math.max(...first))}, last ${mb(samples.at(-1))}; ${(read / 1048576).toFixed(1)} MB read; exit ${status} after the reader closed`,
    );
  }
  return lines.join('\n');
}

/** The bundle bin/message-passing.js loads; rebuilt when a `tsc` alone made it stale (it would measure dist/cli/main.js). */
function freshBundle() {
  const dist = join(HERE, '..', '..', 'dist');
  const mtime = (file) => (existsSync(join(dist, file)) ? statSync(join(dist, file)).mtimeMs : -1);
  if (mtime('cli/main.js') < 0) throw new Error('dist/ is missing: run npm run build first');
  if (mtime('message-passing.cjs') >= mtime('cli/main.js')) return 'dist/message-passing.cjs';
  const result = spawnSync(NODE, [join(HERE, '..', '..', 'scripts', 'bundle.mjs')], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('scripts/bundle.mjs failed');
  return 'dist/message-passing.cjs (rebuilt: it was older than dist/cli/main.js)';
}

export async function run({ quick = process.argv.includes('--quick') } = {}) {
  const events = Number(process.env.BENCH_EVENTS ?? (quick ? 200_000 : 1_000_000));
  const slowEvents = Number(process.env.BENCH_SLOW_EVENTS ?? (quick ? 50_000 : 200_000));
  const repeats = Number(process.env.BENCH_REPEATS ?? 3);
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mp-bench-'));
  const bundle = freshBundle();
  console.log(`\n== core: ${fmt(events)} events of ~${Math.round(readFileSync(corpusFile(1000)).length / 1000)} bytes (jq and Perl: ${fmt(slowEvents)}), best of ${repeats} (peak RSS: the highest), stdout to a file, node ${process.version}, ${bundle}`);
  try {
    const results = throughput({ events, slowEvents, repeats, dir });
    console.log(table(results));
    console.log('commands (corpus on stdin, stdout to a file):');
    for (const r of results) if (!r.skipped) console.log(`  ${r.name.padEnd(42)} ${r.pipe ? `cat CORPUS | ${r.pipe}` : r.argv.join(' ')}`);
    console.log(startup({ runs: quick ? 20 : 50 }));
    console.log(await slowReader({ events, seconds: quick ? 2 : 4 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();
