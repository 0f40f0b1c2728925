// Start-up cost of the default command line next to Node's own:
//
//   node scripts/startup.mjs [--runs 20] [--budget 25] ['BIN [ARG...]'...]
//
// Runs `node -e 0` and `echo '{}' | node BIN ARG...` (bin/message-passing.js
// unless BIN is given; several compare builds or command lines, e.g.
// 'bin/message-passing.js --input STDIN') alternately, RUNS times each after
// 3 warm-up rounds, and prints the median wall time of each in ms (and the
// fastest, a steadier figure on a busy machine) and each BIN's median excess over
// `node -e 0`. Exits 1 when an excess is over BUDGET ms.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const [value] = args.splice(i, 2).slice(1);
  return Number(value);
};
const runs = option('--runs', 20);
const budget = option('--budget', 25);
const bins = args.length ? args : [join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'message-passing.js')];

const commands = [
  { label: 'node -e 0', argv: ['-e', '0'], input: '' },
  ...bins.map((bin) => ({ label: `echo '{}' | node ${bin}`, argv: bin.split(' ').filter(Boolean), input: '{}\n' })),
];

function once({ argv, input, label }) {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, argv, { input, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${label}: exit ${result.status}: ${result.stderr}`);
  return ms;
}

const times = commands.map(() => []);
for (let round = -3; round < runs; round++) {
  commands.forEach((command, i) => {
    const ms = once(command);
    if (round >= 0) times[i].push(ms);
  });
}

const median = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const base = median(times[0]);
let over = false;
commands.forEach((command, i) => {
  const m = median(times[i]);
  const excess = i === 0 ? '' : `  (+${(m - base).toFixed(1)} ms)`;
  if (i > 0 && m - base > budget) over = true;
  const min = Math.min(...times[i]);
  console.log(`${m.toFixed(1).padStart(7)} ms (min ${min.toFixed(1).padStart(6)})  ${command.label}${excess}`);
});
console.log(`median of ${runs} runs each, alternating; budget +${budget} ms`);
process.exit(over ? 1 : 0);
