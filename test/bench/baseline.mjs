// Hand-written Node baselines for the benchmark: what any Node implementation
// costs at least, NDJSON on stdin to stdout.
//
//   node baseline.mjs loop json     read a chunk, split it on LF, JSON.parse and
//                                   JSON.stringify each line, one joined write per
//                                   chunk: the floor of any Node implementation.
//   node baseline.mjs loop lines    the same without JSON (the floor of a raw pass-through).
//   node baseline.mjs split2 json   split2 (one line per stream chunk) + JSON, writes
//   node baseline.mjs split2 lines  batched per 1000 lines: would split2 be a bottleneck?
//
// Empty lines are skipped; no CR handling, no error records, no line numbers.
import split2 from 'split2';

const [splitter, mode] = process.argv.slice(2);
const json = mode === 'json';
if (!['loop', 'split2'].includes(splitter) || !['json', 'lines'].includes(mode)) {
  process.stderr.write('usage: node baseline.mjs loop|split2 json|lines\n');
  process.exit(2);
}

/** One write per batch; the source waits while stdout is full. */
let source = process.stdin;
function write(text) {
  if (!process.stdout.write(text)) {
    source.pause();
    process.stdout.once('drain', () => source.resume());
  }
}

if (splitter === 'loop') {
  let rest = '';
  process.stdin.on('data', (chunk) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop();
    const out = [];
    for (const line of lines) if (line !== '') out.push(json ? JSON.stringify(JSON.parse(line)) : line);
    if (out.length > 0) write(out.join('\n') + '\n');
  });
  process.stdin.on('end', () => {
    if (rest !== '') write((json ? JSON.stringify(JSON.parse(rest)) : rest) + '\n');
  });
} else {
  let out = [];
  const flush = () => {
    if (out.length > 0) write(out.join('\n') + '\n');
    out = [];
  };
  source = process.stdin.pipe(split2());
  source
    .on('data', (line) => {
      if (line === '') return;
      out.push(json ? JSON.stringify(JSON.parse(line)) : line);
      if (out.length === 1000) flush();
    })
    .on('end', flush);
}
