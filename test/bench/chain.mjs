// The chain alone, before/after: decode, FILTERS Null filters, encode, into an
// output that only counts, in process, on 200,000 lines of the corpus (what
// --filter Null costs beyond reading and writing). Each build runs in a process
// of its own, the two taking turns, RUNS times; each process reports the least
// CPU time of 5 rounds after 2 to warm up. CPU time rather than wall time: on a
// shared machine it moves less.
//   BENCH_BEFORE=/path/to/old/checkout node test/bench/chain.mjs
// (a checkout or copy with dist/ built); BENCH_RUNS (default 12), BENCH_FILTERS (1).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile } from './corpus.mjs';

const SELF = fileURLToPath(import.meta.url);
const HERE_DIST = join(dirname(SELF), '..', '..', 'dist');

async function one(dist, filterCount) {
  const load = async (path) => (await import(pathToFileURL(join(dist, path)).href)).default;
  const { Chain } = await import(pathToFileURL(join(dist, 'core', 'chain.js')).href);
  const codec = await (await load('codecs/json.js')).create({}, {});
  const nullFilter = await load('filters/null.js');
  const lines = readFileSync(corpusFile(), 'utf8').split('\n').slice(0, 200_000);
  let written = 0;
  const chain = await Chain.build({
    decoder: codec,
    encoder: codec,
    errorOutput: { write() {}, close: async () => {} },
    output: () => ({ write: (frames) => void (written += frames.length), close: async () => {} }),
    filters: Array.from({ length: filterCount }, (_, i) => ({ name: `Null${i}`, create: (context) => nullFilter.create({}, context) })),
  });
  const input = chain.inputContext();
  let best = Infinity;
  for (let round = 0; round < 7; round++) {
    const before = process.cpuUsage();
    for (let i = 0, first = 1; i < lines.length; i += 512, first += 512) input.emit({ frames: lines.slice(i, i + 512), source: 'stdin', first });
    const spent = process.cpuUsage(before);
    if (round >= 2) best = Math.min(best, (spent.user + spent.system) / 1000);
  }
  if (written !== lines.length * 7) throw new Error(`${written} lines written of ${lines.length * 7}`);
  return best;
}

if (process.argv[2] === '--one') {
  console.log(await one(process.argv[3], Number(process.argv[4])));
} else {
  const before = process.env.BENCH_BEFORE;
  if (!before) throw new Error('set BENCH_BEFORE to a checkout (or copy) of the old build, with dist/');
  const builds = { before: join(resolve(before), 'dist'), after: HERE_DIST };
  const runs = Number(process.env.BENCH_RUNS ?? 12);
  const filters = Number(process.env.BENCH_FILTERS ?? 1);
  const times = { before: [], after: [] };
  for (let run = 0; run < runs; run++) {
    for (const name of run % 2 ? ['after', 'before'] : ['before', 'after']) {
      times[name].push(Number(execFileSync(process.execPath, [SELF, '--one', builds[name], String(filters)], { encoding: 'utf8' })));
    }
  }
  const least = (list) => Math.min(...list);
  const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  console.log(`chain, ${filters} Null filter(s), 200,000 lines, CPU ms (least / median of ${runs} processes each):`);
  for (const name of ['before', 'after']) console.log(`  ${name.padEnd(6)} ${least(times[name]).toFixed(1)} / ${median(times[name]).toFixed(1)}`);
  console.log(`  after/before: ${(least(times.after) / least(times.before)).toFixed(3)} (least), ${(median(times.after) / median(times.before)).toFixed(3)} (median)`);
}
