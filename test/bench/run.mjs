// `npm run bench` (after `npm run build`): every benchmark, one after another.
//   node test/bench/run.mjs [--quick] [--soak]
// --quick: fewer events (200,000; jq and Perl 50,000), fewer start-up runs.
// --soak (or BENCH_SOAK=1): also the soak run (10 million messages through three
// processes, a 30 s slow consumer; a few minutes), left out otherwise.
// Each benchmark is a module of this folder exporting run({ quick }); a missing
// one is skipped with a note. Throughput figures are the best of a few runs:
// the machine may be busy (compare within one run, not across runs).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCHMARKS = [
  ['compare.mjs', 'before/after: the main cases with an older build (BENCH_BEFORE), interleaved'],
  ['core.mjs', 'STDIN/STDOUT, JSON and raw, beside cat, jq, Perl and plain Node; start-up; memory'],
  ['zeromq.mjs', 'ZeroMQ inputs and outputs'],
  ['file.mjs', 'File input and output, follow mode'],
  ['redis-postgres.mjs', 'Redis streams in and out, Postgres, beside redis-cli --pipe and psql \\copy'],
  ['filters.mjs', 'Parse and Multiline beside --filter Null; Multiline memory with 1M distinct keys'],
  ['windows.mjs', 'Dedupe and Threshold beside --filter Null; window filters\' memory with 1M distinct keys'],
  ['python-logging.mjs', 'Python logging: SocketHandler records received, beside the logging cookbook receiver; idle connections; lines over a socket'],
];

const quick = process.argv.includes('--quick');
if (process.argv.includes('--soak') || process.env.BENCH_SOAK === '1') {
  BENCHMARKS.push(['soak.mjs', 'soak: 10 million messages through three processes, counted; a slow consumer; memory over time']);
}
if (quick) {
  // Read when the benchmark modules load (file.mjs reads these at import).
  process.env.BENCH_EVENTS ??= '200000';
  process.env.BENCH_SLOW_EVENTS ??= '50000';
  process.env.BENCH_PERL_EVENTS ??= '50000';
}

console.log(`message-passing benchmarks${quick ? ' (--quick)' : ''}: node ${process.version}, ${new Date().toISOString()}`);
let failed = 0;
for (const [file, what] of BENCHMARKS) {
  const path = fileURLToPath(new URL(file, import.meta.url));
  if (!existsSync(path)) {
    console.log(`\n== ${file}: skipped, not written yet (${what})`);
    continue;
  }
  try {
    const bench = await import(pathToFileURL(path).href);
    if (typeof bench.run !== 'function') {
      console.log(`\n== ${file}: skipped, it exports no run()`);
      continue;
    }
    await bench.run({ quick });
  } catch (error) {
    failed++;
    console.log(`\n== ${file}: FAILED: ${error instanceof Error ? error.message : error}`);
    if (process.env.DEBUG && error instanceof Error) console.log(error.stack);
  }
}
process.exitCode = failed ? 1 : 0;
