// Redis and Postgres benchmarks, against the servers on 127.0.0.1 (Redis 6379,
// PostgreSQL 5432, database test), each beside its anchor in the same run:
//
//   STDIN -> Redis stream      message-passing (as bytes; and decoded, through
//                              a Null filter) beside redis-cli --pipe sending the
//                              same XADDs
//   Redis stream -> STDOUT     message-passing (consumer group, XACK) beside a
//                              bare node-redis loop (XREADGROUP + XACK, lines out)
//   STDIN -> Postgres          message-passing (3 columns + jsonb) beside
//                              psql \copy of the same rows, and a bare pg script
//                              sending them in the output's transactions
//   Redis stream -> Postgres   the gatherer (consumer group, commit, XACK)
//
// Start-up is left out of every rate: Redis stamps each entry's id with its
// time of arrival (rate = entries / (last id - first id)), rows get
// clock_timestamp() at insertion (rows / (last - first)), and the readers'
// output is followed from its first line to its last. Every run is checked
// (entry and row counts; the stream read back byte for byte). Best of
// BENCH_REPEATS runs (default 3): the machine may be busy.
//
//   node test/bench/redis-postgres.mjs [--quick]
// Environment: BENCH_REDIS_EVENTS (default 300,000; --quick 100,000),
// BENCH_PG_EVENTS (default 200,000; --quick 50,000), BENCH_REPEATS.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { corpusFile } from './corpus.mjs';
import { fmt, sleep } from './util.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const BIN = join(ROOT, 'bin', 'message-passing.js');
const SELF = fileURLToPath(import.meta.url);
const NODE = process.execPath;
const REDIS_URL = 'redis://127.0.0.1:6379';
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const require = createRequire(join(ROOT, 'package.json'));

const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');

// ---------------------------------------------------------------------------
// The bare node-redis reader, run as this file:
//   node redis-postgres.mjs --bare-read KEY GROUP COUNT    writes COUNT messages to stdout, one per line

async function bareRead(key, group, count) {
  const { createClient, RESP_TYPES } = require('redis');
  const client = createClient({ url: REDIS_URL, RESP: 2 });
  await client.connect();
  const raw = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  const acker = client.duplicate();
  await acker.connect();
  await client.sendCommand(['XGROUP', 'CREATE', key, group, '0']).catch(() => undefined);
  let read = 0;
  while (read < count) {
    const reply = await raw.sendCommand(['XREADGROUP', 'GROUP', group, 'bare', 'COUNT', '500', 'BLOCK', '1000', 'STREAMS', key, '>']);
    if (!reply) continue;
    const entries = reply[0][1];
    const lines = [];
    const ids = [];
    for (const [id, fields] of entries) {
      ids.push(id);
      lines.push(fields[1]);
      lines.push(NEWLINE);
    }
    read += entries.length;
    const flushed = process.stdout.write(Buffer.concat(lines));
    acker.sendCommand(['XACK', key, group, ...ids]);
    if (!flushed) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
  await acker.quit();
  await client.quit();
}
const NEWLINE = Buffer.from('\n');

//   node redis-postgres.mjs --bare-copy TABLE ROWS_FILE    the rows (COPY text) in transactions of 1000,
//                                                          each BEGIN; COPY; COMMIT in one round trip, as the output sends them
async function bareCopy(table, rowsFile) {
  const pg = require('pg');
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  const lines = readFileSync(rowsFile, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const text = `BEGIN; SELECT txid_current()::text; COPY ${table} (host, level, message, doc) FROM STDIN; COMMIT`;
  for (let from = 0; from < lines.length; from += 1000) {
    const data = Buffer.from(lines.slice(from, from + 1000).join('\n') + '\n');
    await new Promise((resolve, reject) => {
      let done = false;
      const finish = (error) => {
        if (done) return;
        done = true;
        if (error) reject(error);
        else resolve();
      };
      client.query({
        submit: (connection) => connection.query(text),
        handleCopyInResponse: (connection) => {
          connection.sendCopyFromChunk(data);
          connection.endCopyFrom();
        },
        handleError: finish,
        handleReadyForQuery: () => finish(),
        handleCommandComplete() {},
        handleDataRow() {},
        handleRowDescription() {},
        handleEmptyQuery() {},
        handlePortalSuspended() {},
        handleCopyData() {},
      });
    });
  }
  await client.end();
}

// ---------------------------------------------------------------------------

function has(command) {
  return spawnSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function exited(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode);
    else child.on('exit', (code, signal) => resolve(code ?? signal));
  });
}

/** Runs `argv` with `input` (a file) on stdin to its end; rejects with its stderr when it fails. */
async function runToEnd(argv, input) {
  const inFd = openSync(input, 'r');
  const child = spawn(argv[0], argv.slice(1), { stdio: [inFd, 'ignore', 'pipe'] });
  closeSync(inFd);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const status = await exited(child);
  if (status !== 0) throw new Error(`${argv.slice(0, 3).join(' ')} ... exited ${status}: ${stderr.slice(0, 500)}`);
}

/** The RESP commands `XADD key * message LINE` for every line of `corpus`, for redis-cli --pipe. */
function pipeFile(corpus, key, path) {
  const bulk = (text) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  const head = `*5\r\n${bulk('XADD')}${bulk(key)}${bulk('*')}${bulk('message')}`;
  const lines = readFileSync(corpus, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const parts = [];
  for (const line of lines) parts.push(head, bulk(line));
  writeFileSync(path, parts.join(''));
}

/** Entries per second that Redis took, from the times in the first and last entry ids. */
async function streamRate(redis, key, expected) {
  const length = await redis.xLen(key);
  if (length !== expected) throw new Error(`stream ${key} has ${length} entries, not ${expected}`);
  const [first] = await redis.xRange(key, '-', '+', { COUNT: 1 });
  const [last] = await redis.xRevRange(key, '+', '-', { COUNT: 1 });
  const ms = Number(last.id.split('-')[0]) - Number(first.id.split('-')[0]);
  const seconds = Math.max(1e-3, ms / 1000);
  return { delivered: length, seconds, rate: length / seconds };
}

/** Follows a growing file until it holds `bytes` bytes; the time from its first byte to its last. */
async function followFile(path, bytes, child, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  let first;
  let last;
  let size = 0;
  while (size < bytes) {
    const now = statSync(path).size;
    if (now > size) {
      const at = Date.now();
      first ??= at;
      last = at;
      size = now;
    }
    if (child.exitCode !== null) throw new Error(`reader exited ${child.exitCode} with ${size} of ${bytes} bytes`);
    if (Date.now() > deadline) throw new Error(`timed out with ${size} of ${bytes} bytes`);
    await sleep(5);
  }
  return { seconds: Math.max(1e-3, (last - first) / 1000) };
}

function sha1(path) {
  return createHash('sha1').update(readFileSync(path)).digest('hex');
}

/** Rows per second, from the insertion times of the first and last rows. */
async function tableRate(db, table, expected) {
  const { rows } = await db.query(`SELECT count(*)::int AS n, extract(epoch FROM max(at) - min(at)) AS seconds FROM ${table}`);
  const { n, seconds } = rows[0];
  if (n !== expected) throw new Error(`table ${table} has ${n} rows, not ${expected}`);
  const span = Math.max(1e-3, Number(seconds));
  return { delivered: n, seconds: span, rate: n / span };
}

/** The corpus as COPY text for (host, level, message, doc), for psql \copy. */
function copyFile(corpus, path) {
  const escape = (text) => text.replace(/[\\\n\r\t]/g, (ch) => ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[ch]);
  const lines = readFileSync(corpus, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const out = lines.map((line) => {
    const event = JSON.parse(line);
    return [event.host, event.level, event.message, line].map((cell) => escape(String(cell))).join('\t');
  });
  writeFileSync(path, out.join('\n') + '\n');
}

async function best(repeats, once) {
  let result;
  for (let i = 0; i < repeats; i++) {
    const run = await once(i);
    if (!result || run.rate > result.rate) result = run;
  }
  return result;
}

function table(title, results, ...anchors) {
  const pairs = [];
  for (let i = 0; i < anchors.length; i += 2) pairs.push({ anchor: results.find((r) => r.id === anchors[i] && !r.skipped), name: anchors[i + 1] });
  const rows = [['case', 'messages', 'msg/s', ...pairs.map(({ name }) => `vs ${name}`)]];
  for (const r of results) {
    if (r.skipped) rows.push([r.name, '-', `skipped: ${r.skipped}`, ...pairs.map(() => '')]);
    else rows.push([r.name, fmt(r.delivered), fmt(r.rate), ...pairs.map(({ anchor }) => ratio(r.rate, anchor?.rate))]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  console.log(`\n${title}`);
  console.log(rows.map((row) => row.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ')).join('\n'));
}

async function redisCases({ redis, corpus, events, repeats, dir }) {
  const mp = (...args) => [NODE, BIN, ...args];
  const prefix = `mp-bench:${process.pid}`;
  const results = [];

  // STDIN -> Redis stream
  const writers = [
    { id: 'mp', name: 'message-passing STDIN -> Redis stream (as bytes)', argv: (key) => mp('--output', 'Redis', '--output_options', JSON.stringify({ mode: 'stream', key })) },
    {
      id: 'mp-decoded',
      name: 'message-passing STDIN -> Redis stream (decoded: --filter Null)',
      argv: (key) => mp('--filter', 'Null', '--output', 'Redis', '--output_options', JSON.stringify({ mode: 'stream', key })),
    },
    { id: 'cli', name: 'redis-cli --pipe (the same XADDs)', argv: () => ['redis-cli', '-h', '127.0.0.1', '-p', '6379', '--pipe'], pipe: true },
  ];
  const pipeInput = join(dir, 'xadd.resp');
  if (has('redis-cli')) pipeFile(corpus, `${prefix}:write`, pipeInput);
  const writeResults = [];
  for (const writer of writers) {
    if (writer.pipe && !has('redis-cli')) {
      writeResults.push({ ...writer, skipped: 'redis-cli not installed' });
      continue;
    }
    const key = `${prefix}:write`;
    const result = await best(repeats, async () => {
      await redis.del(key);
      await runToEnd(writer.argv(key), writer.pipe ? pipeInput : corpus);
      return streamRate(redis, key, events);
    });
    writeResults.push({ ...writer, ...result });
  }
  await redis.del(`${prefix}:write`);
  table(`STDIN -> Redis stream, ${fmt(events)} events (rate from the entry ids: Redis's own clock)`, writeResults, 'cli', 'redis-cli --pipe');
  results.push(...writeResults);

  // Redis stream -> STDOUT: the stream filled once, each reader in a group of its own.
  const key = `${prefix}:read`;
  await redis.del(key);
  await runToEnd(mp('--output', 'Redis', '--output_options', JSON.stringify({ mode: 'stream', key })), corpus);
  const corpusBytes = statSync(corpus).size;
  const corpusHash = sha1(corpus);
  const readers = [
    {
      id: 'mp-read',
      name: 'message-passing Redis stream -> STDOUT (group, XACK)',
      argv: (group) => mp('--input', 'Redis', '--input_options', JSON.stringify({ mode: 'stream', key, group })),
    },
    { id: 'bare-read', name: 'bare node-redis XREADGROUP + XACK loop', argv: (group) => [NODE, SELF, '--bare-read', key, group, String(events)] },
  ];
  const readResults = [];
  for (const reader of readers) {
    const result = await best(repeats, async (i) => {
      const group = `${reader.id}-${i}`;
      const out = join(dir, 'read.ndjson');
      const outFd = openSync(out, 'w');
      const child = spawn(reader.argv(group)[0], reader.argv(group).slice(1), { stdio: ['ignore', outFd, 'pipe'] });
      closeSync(outFd);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      try {
        const { seconds } = await followFile(out, corpusBytes, child);
        if (sha1(out) !== corpusHash) throw new Error(`${reader.name}: the output differs from the corpus`);
        return { delivered: events, seconds, rate: events / seconds };
      } catch (error) {
        throw new Error(`${error.message}: ${stderr.slice(0, 300)}`);
      } finally {
        child.kill('SIGTERM');
        await exited(child);
        rmSync(out, { force: true });
      }
    });
    readResults.push({ ...reader, ...result });
  }
  table(`Redis stream -> STDOUT, ${fmt(events)} events (rate from the first line out to the last)`, readResults, 'bare-read', 'bare node-redis');
  results.push(...readResults);
  return { results, key };
}

async function postgresCases({ redis, db, corpus, events, repeats, dir, streamKey, streamEvents }) {
  const mp = (...args) => [NODE, BIN, ...args];
  const tableName = `mp_bench_${process.pid}`;
  const create = async () => {
    await db.query(`DROP TABLE IF EXISTS ${tableName}`);
    await db.query(`CREATE TABLE ${tableName} (at timestamptz DEFAULT clock_timestamp(), host text, level text, message text, doc jsonb)`);
  };
  const output = ['--output', 'Postgres', '--output_options', JSON.stringify({ url: PG_URL, table: tableName, columns: { host: 'host', level: 'level', message: 'message' }, json_column: 'doc' })];
  const copyInput = join(dir, 'rows.copy');
  copyFile(corpus, copyInput);
  const cases = [
    { id: 'mp-pg', name: 'message-passing STDIN -> Postgres (3 columns + jsonb)', argv: () => mp(...output), input: corpus },
    {
      id: 'bare-pg',
      name: 'bare pg: the same rows, COPY transactions of 1000 (no JSON)',
      argv: () => [NODE, SELF, '--bare-copy', tableName, copyInput],
      input: '/dev/null',
    },
    {
      id: 'psql',
      name: 'psql \\copy (the same rows, one COPY)',
      argv: () => ['psql', PG_URL, '-q', '-v', 'ON_ERROR_STOP=1', '-c', `\\copy ${tableName} (host, level, message, doc) FROM '${copyInput}'`],
      input: '/dev/null',
      skipped: has('psql') ? undefined : 'psql not installed',
    },
  ];
  const results = [];
  try {
    for (const testCase of cases) {
      if (testCase.skipped) {
        results.push(testCase);
        continue;
      }
      const result = await best(repeats, async () => {
        await create();
        await runToEnd(testCase.argv(), testCase.input);
        return tableRate(db, tableName, events);
      });
      results.push({ ...testCase, ...result });
    }
    // The gatherer: the stream filled above, read by a new group, into the table.
    const gatherer = await best(repeats, async (i) => {
      await create();
      const child = spawn(NODE, [BIN, '--input', 'Redis', '--input_options', JSON.stringify({ mode: 'stream', key: streamKey, group: `pg-${i}` }), ...output], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      try {
        const deadline = Date.now() + 300_000;
        for (;;) {
          const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${tableName}`);
          if (rows[0].n >= streamEvents) break;
          if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gatherer: ${rows[0].n} of ${streamEvents} rows: ${stderr.slice(0, 300)}`);
          await sleep(20);
        }
      } finally {
        child.kill('SIGTERM');
        await exited(child);
      }
      return tableRate(db, tableName, streamEvents);
    });
    results.push({ id: 'gatherer', name: 'message-passing Redis stream -> Postgres (the gatherer)', ...gatherer });
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${tableName}`);
    await redis.del(streamKey);
  }
  table(`-> Postgres (rate from the rows' insertion times: the server's clock)`, results, 'psql', 'psql \\copy', 'bare-pg', 'bare pg');
  return results;
}

export async function run({ quick = process.argv.includes('--quick') } = {}) {
  const events = Number(process.env.BENCH_REDIS_EVENTS ?? (quick ? 100_000 : 300_000));
  const pgEvents = Number(process.env.BENCH_PG_EVENTS ?? (quick ? 50_000 : 200_000));
  const repeats = Number(process.env.BENCH_REPEATS ?? (quick ? 2 : 3));
  const { createClient } = require('redis');
  const pg = require('pg');
  const redis = createClient({ url: REDIS_URL, RESP: 2 });
  const db = new pg.Client({ connectionString: PG_URL });
  try {
    await redis.connect();
  } catch (error) {
    console.log(`\n== Redis benchmarks skipped: no Redis on ${REDIS_URL} (${error.message})`);
    return [];
  }
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'mp-bench-redis-'));
  try {
    console.log(`\nRedis and Postgres (node ${process.version}; best of ${repeats})`);
    const { results, key } = await redisCases({ redis, corpus: corpusFile(events), events, repeats, dir });
    try {
      await db.connect();
    } catch (error) {
      console.log(`\n== Postgres benchmarks skipped: no PostgreSQL at ${PG_URL} (${error.message})`);
      return results;
    }
    const pgResults = await postgresCases({ redis, db, corpus: corpusFile(pgEvents), events: pgEvents, repeats, dir, streamKey: key, streamEvents: events });
    return [...results, ...pgResults];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await redis.quit().catch(() => undefined);
    await db.end().catch(() => undefined);
  }
}

if (process.argv[2] === '--bare-read') {
  await bareRead(process.argv[3], process.argv[4], Number(process.argv[5]));
} else if (process.argv[2] === '--bare-copy') {
  await bareCopy(process.argv[3], process.argv[4]);
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}

