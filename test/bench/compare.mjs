// Before/after: the same cases with two builds of message-passing, interleaved
// (A, B, A, B, ...) in one run, best of BENCH_REPEATS each, with the ratio.
//   BENCH_BEFORE=/path/to/old/bin/message-passing.js node test/bench/compare.mjs [--quick]
// The old build is any checkout's bin/message-passing.js after its `npm run build`
// (e.g. `git worktree add /tmp/before <commit> && cd /tmp/before && npm ci`).
// Cases: STDIN -> JSON -> STDOUT with and without --filter Null, raw (Null
// codecs), File -> File, ZeroMQ PUSH -> PULL, and start-up (scripts/startup.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile } from './corpus.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const AFTER = join(HERE, '..', '..', 'bin', 'message-passing.js');
const NODE = process.execPath;

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

function lineCount(path) {
  const data = readFileSync(path);
  let n = 0;
  for (let at = data.indexOf(10); at >= 0; at = data.indexOf(10, at + 1)) n++;
  return n;
}

/** One run of a case with `bin`; returns seconds, checked against the line count. */
async function once(bin, testCase, corpus, events, dir) {
  const out = join(dir, 'out.ndjson');
  rmSync(out, { force: true });
  const started = performance.now();
  if (testCase.zeromq) {
    const port = await freePort();
    const address = `tcp://127.0.0.1:${port}`;
    const outFd = openSync(out, 'w');
    const rx = spawn(NODE, [bin, '--input', 'ZeroMQ', '--input_options', JSON.stringify({ socket_bind: address, socket_type: 'PULL' })], { stdio: ['ignore', outFd, 'inherit'] });
    closeSync(outFd);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    const inFd = openSync(corpus, 'r');
    const tx = spawnSync(NODE, [bin, '--output', 'ZeroMQ', '--output_options', JSON.stringify({ connect: address, socket_type: 'PUSH' })], { stdio: [inFd, 'ignore', 'inherit'] });
    closeSync(inFd);
    if (tx.status !== 0) throw new Error(`${testCase.name}: sender exit ${tx.status}`);
    while (statSync(out).size < statSync(corpus).size) await new Promise((r) => setTimeout(r, 5));
    const seconds = (performance.now() - t0) / 1000;
    rx.kill('SIGTERM');
    await new Promise((r) => rx.on('exit', r));
    if (lineCount(out) !== events) throw new Error(`${testCase.name}: ${lineCount(out)} of ${events}`);
    return seconds;
  }
  const inFd = openSync(corpus, 'r');
  const outFd = openSync(testCase.file ? '/dev/null' : out, 'w');
  const args = testCase.args(corpus, out);
  const result = spawnSync(NODE, [bin, ...args], { stdio: [inFd, outFd, 'inherit'] });
  closeSync(inFd);
  closeSync(outFd);
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) throw new Error(`${testCase.name}: exit ${result.status}`);
  if (lineCount(out) !== events) throw new Error(`${testCase.name}: ${lineCount(out)} of ${events}`);
  return seconds;
}

export async function run({ quick = process.argv.includes('--quick') } = {}) {
  const before = process.env.BENCH_BEFORE;
  if (!before || !existsSync(before)) {
    console.log('\n== compare: skipped (set BENCH_BEFORE to an older build\'s bin/message-passing.js)');
    return;
  }
  const events = Number(process.env.BENCH_EVENTS ?? (quick ? 200_000 : 1_000_000));
  const repeats = Number(process.env.BENCH_REPEATS ?? 3);
  const corpus = corpusFile(events);
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mp-compare-'));
  const cases = [
    { name: 'STDIN -> JSON -> STDOUT', args: () => [] },
    { name: 'the same with --filter Null', args: () => ['--filter', 'Null'] },
    { name: 'raw (--decoder Null --encoder Null)', args: () => ['--decoder', 'Null', '--encoder', 'Null'] },
    {
      name: 'File -> JSON -> File',
      file: true,
      args: (input, out) => ['--input', 'File', '--input_options', JSON.stringify({ filename: input }), '--output', 'File', '--output_options', JSON.stringify({ filename: out })],
    },
    { name: 'ZeroMQ PUSH -> PULL (JSON)', zeromq: true },
  ];
  console.log(`\n== compare: ${events.toLocaleString('en-US')} events, best of ${repeats}, interleaved; before = ${before}`);
  const rows = [['case', 'before msg/s', 'after msg/s', 'after/before']];
  try {
    for (const testCase of cases) {
      const best = { before: Infinity, after: Infinity };
      for (let i = 0; i < repeats; i++) {
        best.before = Math.min(best.before, await once(before, testCase, corpus, events, dir));
        best.after = Math.min(best.after, await once(AFTER, testCase, corpus, events, dir));
      }
      rows.push([testCase.name, Math.round(events / best.before).toLocaleString('en-US'), Math.round(events / best.after).toLocaleString('en-US'), (best.before / best.after).toFixed(3)]);
      process.stderr.write(`  ${testCase.name}: ${rows.at(-1).slice(1).join('  ')}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  console.log(rows.map((r) => r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ')).join('\n'));
  // Start-up: scripts/startup.mjs runs node -e 0 and each build alternately and prints medians.
  const startup = spawnSync(NODE, [join(HERE, '..', '..', 'scripts', 'startup.mjs'), '--runs', '20', '--budget', '1000', before, AFTER], { encoding: 'utf8' });
  console.log(`start-up (node scripts/startup.mjs --runs 20 BEFORE AFTER):\n${startup.stdout.trimEnd()}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();
