// Postgres output, end to end: the real binary against the PostgreSQL server on
// 127.0.0.1:5432 (database test), with tables of their own per test (dropped
// after the file). Faults: pg_terminate_backend under load, a commit whose
// answer is lost, the server unreachable past retry_timeout, rows the database
// rejects; and the whole pipeline: bursts -> Dedupe -> Redis stream -> a
// gatherer killed with kill -9 and restarted -> a table.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { records, run, sleep, stop, tempDir, tracked } from './helpers.js';
import { FaultProxy } from './proxy.js';

const DATABASE = 'postgres://postgres@127.0.0.1:5432/test';
const dir = tempDir();
const track = tracked();
/** A process of the test, killed after it (and after 55 s: a test may take that long on a busy machine). */
const spawned = (args: readonly string[]) => track(args, { timeout: 55_000 });
const db = new pg.Client({ connectionString: DATABASE });
const tables: string[] = [];
let counter = 0;
const newTable = () => {
  const name = `mp_test_${process.pid}_${++counter}`;
  tables.push(name);
  return name;
};

const schemas: string[] = [];
/** A schema of the test's own (dropped, with its tables, after the file). */
const newSchema = () => {
  const name = `mp_test_${process.pid}_schema_${++counter}`;
  schemas.push(name);
  return name;
};

beforeAll(async () => {
  await db.connect();
});
afterAll(async () => {
  for (const table of tables) await db.query(`DROP TABLE IF EXISTS ${table}`);
  for (const schema of schemas) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

const postgresOutput = (options: object) => ['--output', 'Postgres', '--output_options', JSON.stringify(options)];
const ndjson = (values: readonly unknown[]) => values.map((v) => JSON.stringify(v) + '\n').join('');
const range = (count: number) => Array.from({ length: count }, (_, i) => i);
const statsLine = (stderr: string) => /stats in=(\d+) created=(\d+) out=(\d+) dropped=(\d+) errors=(\d+)/.exec(stderr)?.slice(1).map(Number);
/** Error records in stderr (lines that are JSON objects), without the program's own lines. */
const errorRecords = (stderr: string) => records(stderr.replace(/^message-passing:.*$/gm, ''));

async function count(sql: string): Promise<number> {
  return Number((await db.query<{ n: string }>(sql)).rows[0]!.n);
}

/** Polls an asynchronous `condition` (a query) until it holds; fails naming `what` after `ms`. */
async function eventually(condition: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await condition()); await sleep(25)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

describe('Postgres output', () => {
  it('columns and json_column: each value as its column type reads it', async () => {
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int, host text, at timestamptz, tags text[], level text, doc jsonb)`);
    const messages = [
      { id: 1, host: { name: 'web-1' }, time: 1700000000, tags: ['a', 'b "c"'], level: 'info', text: 'tab\there' },
      { id: 2, host: { name: 'web-2' }, time: '2024-01-02T03:04:05.678Z', level: 'warn\\error' },
      { id: 3, 'host.name': 'flat', time: 1700000000123 },
    ];
    const result = await run(
      [...postgresOutput({ url: DATABASE, table, columns: { id: 'id', host: 'host.name', at: 'time', tags: 'tags', level: 'level' }, json_column: 'doc' }), '--stats'],
      { input: ndjson(messages) },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(statsLine(result.stderr)).toEqual([3, 0, 3, 0, 0]);
    const rows = (await db.query(`SELECT id, host, at, tags, level, doc FROM ${table} ORDER BY id`)).rows;
    expect(rows).toEqual([
      { id: 1, host: 'web-1', at: new Date(1700000000000), tags: ['a', 'b "c"'], level: 'info', doc: messages[0] },
      { id: 2, host: 'web-2', at: new Date('2024-01-02T03:04:05.678Z'), tags: null, level: 'warn\\error', doc: messages[1] },
      { id: 3, host: 'flat', at: new Date(1700000000123), tags: null, level: null, doc: messages[2] },
    ]);
  });

  it('rows the database rejects go to the error output with its reason; the rest of their batch is written', async () => {
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int CHECK (n >= 0))`);
    const messages = range(20).map((id) => ({ id, n: id }));
    messages[5] = { id: 3, n: 5 }; // the same id as another row
    messages[9] = { id: 9, n: -1 }; // breaks the check
    messages[14] = { id: 14, n: 'fourteen' } as unknown as { id: number; n: number };
    const result = await run([...postgresOutput({ url: DATABASE, table, columns: { id: 'id', n: 'n' } }), '--stats'], { input: ndjson(messages) });
    expect(result.code, result.stderr).toBe(0);
    expect(statsLine(result.stderr)).toEqual([20, 0, 17, 0, 3]);
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBe(17);
    expect(errorRecords(result.stderr)).toEqual([
      {
        error: 'output',
        reason: `Postgres output: duplicate key value violates unique constraint "${table}_pkey"; Key (id)=(3) already exists.`,
        source: 'stdin:6',
        stage: 'output Postgres',
        frame: '{"id":3,"n":5}',
      },
      {
        error: 'output',
        reason: expect.stringMatching(/^Postgres output: new row for relation ".*" violates check constraint ".*"; Failing row contains \(9, -1\)\.$/),
        source: 'stdin:10',
        stage: 'output Postgres',
        frame: '{"id":9,"n":-1}',
      },
      {
        error: 'output',
        reason: 'Postgres output: invalid input syntax for type integer: "fourteen"; column n',
        source: 'stdin:15',
        stage: 'output Postgres',
        frame: '{"id":14,"n":"fourteen"}',
      },
    ]);
  });

  it('create_table makes a missing table (text columns, jsonb for json_column); a message that is not an object has no columns; no url: the PG* variables', async () => {
    const table = newTable();
    const result = await run(postgresOutput({ table, columns: { host: 'host' }, json_column: 'doc', create_table: true }), {
      input: '{"host":"a","n":1}\n"just a string"\n',
      env: { PGHOST: '127.0.0.1', PGPORT: '5432', PGUSER: 'postgres', PGDATABASE: 'test' },
    });
    expect(result.code, result.stderr).toBe(0);
    expect((await db.query(`SELECT host, doc FROM ${table}`)).rows).toEqual([{ host: 'a', doc: { host: 'a', n: 1 } }]);
    const types = await db.query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [table]);
    expect(types.rows).toEqual([
      { column_name: 'host', data_type: 'text' },
      { column_name: 'doc', data_type: 'jsonb' },
    ]);
    expect(errorRecords(result.stderr)).toEqual([
      expect.objectContaining({ error: 'output', reason: expect.stringContaining('the message is not a JSON object'), frame: '"just a string"' }),
    ]);
  });

  it('a schema-qualified table with a capital: written to, in transactions of `batch` rows, a text json_column taking JSON text; another case is a missing table, exit 1', async () => {
    const schema = newSchema();
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`CREATE TABLE ${schema}."Events" (id int, doc text)`);
    const messages = range(7).map((id) => ({ id: id + 1, host: { name: `web-${id}` } }));
    const result = await run([...postgresOutput({ url: DATABASE, table: `${schema}.Events`, columns: { id: 'id' }, json_column: 'doc', batch: 3 }), '--stats'], {
      input: ndjson(messages),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(statsLine(result.stderr)).toEqual([7, 0, 7, 0, 0]);
    const rows = (await db.query<{ tx: string; id: number; doc: string }>(`SELECT xmin::text AS tx, id, doc FROM ${schema}."Events" ORDER BY id`)).rows;
    expect(rows.map((row) => row.doc)).toEqual(messages.map((message) => JSON.stringify(message)));
    // One transaction per batch: rows of one transaction share xmin.
    const transactions = new Map<string, number[]>();
    for (const row of rows) transactions.set(row.tx, [...(transactions.get(row.tx) ?? []), row.id]);
    expect([...transactions.values()]).toEqual([[1, 2, 3], [4, 5, 6], [7]]);

    const other = await run(postgresOutput({ url: DATABASE, table: `${schema}.events`, json_column: 'doc' }), { input: '{"id":1}\n' });
    expect(other.code).toBe(1);
    expect(other.stderr).toBe(
      `message-passing: Postgres output: table ${schema}.events does not exist in postgres://postgres@127.0.0.1:5432/test (create it, or set create_table: true)\n`,
    );
    expect(await count(`SELECT count(*) AS n FROM ${schema}."Events"`)).toBe(7);
  });

  it('a missing table or column, a wrong database or an unreachable server: one line, exit 1', async () => {
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int)`);
    const cases: Array<[object, string]> = [
      [{ url: DATABASE, table: `${table}_missing`, json_column: 'doc' }, `Postgres output: table ${table}_missing does not exist in postgres://postgres@127.0.0.1:5432/test (create it, or set create_table: true)`],
      [{ url: DATABASE, table, columns: { id: 'id', nope: 'x' } }, `Postgres output: table ${table} has no column nope (its columns: id)`],
      [{ url: 'postgres://postgres@127.0.0.1:5432/mp_no_such_database', table, json_column: 'doc' }, 'Postgres output: cannot connect to postgres://postgres@127.0.0.1:5432/mp_no_such_database: database "mp_no_such_database" does not exist'],
      [{ url: 'postgres://postgres@127.0.0.1:1/test', table, json_column: 'doc' }, 'Postgres output: cannot connect to postgres://postgres@127.0.0.1:1/test: connection refused (is the server running, on that port?)'],
    ];
    const results = await Promise.all(cases.map(([options]) => run(postgresOutput(options), { input: '{"id":1}\n' })));
    results.forEach((result, i) => {
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`message-passing: ${cases[i]![1]}\n`);
    });
    const usage = await Promise.all([
      run(postgresOutput({ table })),
      run(postgresOutput({ url: '127.0.0.1:5432/test', table, json_column: 'doc' })),
      run(postgresOutput({ table, columns: ['id'] })),
      run(postgresOutput({ table, json_column: 'doc', max_delay: 'soon' })),
    ]);
    expect(usage.map((result) => result.code)).toEqual([2, 2, 2, 2]);
    expect(usage[0]!.stderr).toMatch(/--output Postgres: give columns .*json_column/);
    expect(usage[1]!.stderr).toMatch(/--output Postgres: url: '127\.0\.0\.1:5432\/test' must start with postgres:\/\//);
    expect(usage[2]!.stderr).toMatch(/--output Postgres: columns must be an object/);
    expect(usage[3]!.stderr).toMatch(/--output Postgres: option 'max_delay' must be a duration/);
  });

  it('connections terminated under load (pg_terminate_backend): nothing lost, nothing written twice', async () => {
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    const name = `mp_test_${process.pid}_terminate`;
    const writer = spawned([
      ...postgresOutput({ url: `${DATABASE}?application_name=${name}`, table, columns: { id: 'id' }, batch: 100, max_delay: '5ms' }),
      '--stats',
    ]);
    let terminated = 0;
    for (let part = 0; part < 10; part++) {
      writer.child.stdin!.write(ndjson(range(300).map((i) => ({ id: part * 300 + i }))));
      if (part % 3 === 1) {
        await eventually(async () => (await count(`SELECT count(*) AS n FROM ${table}`)) >= part * 300, `${part * 300} rows`);
        terminated += await count(`SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = '${name}'`);
      }
    }
    writer.child.stdin!.end();
    const done = await writer.done;
    expect(done.code, done.stderr).toBe(0);
    expect(terminated).toBeGreaterThan(0);
    expect(done.stderr).toMatch(/Postgres output: connection to postgres:\/\/postgres@127\.0\.0\.1:5432\/test lost/);
    // A batch written twice would have been rejected by the primary key, as error records.
    expect(errorRecords(done.stderr)).toEqual([]);
    expect(statsLine(done.stderr)).toEqual([3000, 0, 3000, 0, 0]);
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBe(3000);
  });

  it('a commit whose answer is lost with the connection is looked up, not written again', async () => {
    const proxy = await FaultProxy.start(5432);
    let commits = 0;
    // The answer that says the first transaction committed never arrives (the tag COMMIT of a CommandComplete).
    proxy.dropAnswer = (chunk) => chunk.includes('COMMIT\0') && ++commits === 1;
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    const result = await run(postgresOutput({ url: `postgres://postgres@127.0.0.1:${proxy.port}/test`, table, columns: { id: 'id' } }), {
      input: ndjson(range(50).map((id) => ({ id }))),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(result.stderr).toMatch(/lost \(the server closed the connection\); reconnecting/);
    expect(errorRecords(result.stderr)).toEqual([]);
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBe(50);
  });

  it('the database unreachable for longer than retry_timeout: the count left behind, exit 1', async () => {
    const proxy = await FaultProxy.start(5432);
    const table = newTable();
    await db.query(`CREATE TABLE ${table} (id int)`);
    const writer = spawned(
      postgresOutput({ url: `postgres://postgres@127.0.0.1:${proxy.port}/test`, table, columns: { id: 'id' }, max_delay: '1ms', retry_timeout: '300ms' }),
    );
    writer.child.stdin!.write('{"id":-1}\n');
    // Committed, and the answer delivered: the output counts the row as written.
    await eventually(async () => proxy.answers.includes('COMMIT\0'), 'the commit of the first row');
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBe(1);
    await proxy.down();
    writer.child.stdin!.end(ndjson(range(40).map((id) => ({ id }))));
    const done = await writer.done;
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(
      new RegExp(`^message-passing: Postgres output: 40 messages could not be written to table ${table} of postgres://postgres@127\\.0\\.0\\.1:\\d+/test: .*gave up after retry_timeout \\(300ms\\)$`, 'm'),
    );
  });
});

describe('The pipeline: bursts -> Dedupe -> Redis stream -> gatherer -> Postgres', () => {
  const redis = createClient({ url: 'redis://127.0.0.1:6379', RESP: 2 });
  const key = `mp-test:${process.pid}:pipeline`;
  beforeAll(async () => {
    await redis.connect();
  });
  afterAll(async () => {
    await redis.del(key);
    await redis.quit();
  });

  it('the gatherer killed with kill -9 and restarted: every event in the table, the repeats adding up to the events sent', async () => {
    const table = newTable();
    // One row per record: a record the gatherer writes again after the kill is refused by the key and reported.
    await db.query(`CREATE TABLE ${table} (id int, first_time timestamptz, repeats int, doc jsonb, UNIQUE (id, first_time))`);
    // 300 events, each repeated 1 to 4 times in a burst (times differ, as a logger would write them).
    const events: object[] = [];
    for (const id of range(300)) {
      for (let repeat = 0; repeat <= id % 4; repeat++) events.push({ id, host: `web-${id % 3}`, message: `event ${id}`, time: new Date(1_700_000_000_000 + events.length).toISOString() });
    }
    const slowFilter = join(dir, 'slow.mjs');
    writeFileSync(slowFilter, 'export default (message) => new Promise((resolve) => setTimeout(() => resolve(message), 3));\n');
    const gatherer = () =>
      spawned([
        '--input', 'Redis', '--input_options', JSON.stringify({ mode: 'stream', key, consumer: 'gatherer', batch: 20, block: '100ms' }),
        '--filter', slowFilter,
        ...postgresOutput({ url: DATABASE, table, columns: { id: 'id', first_time: 'first_time', repeats: 'repeats' }, json_column: 'doc' }),
      ]);

    const first = gatherer();
    const producer = await run(
      ['--filter', 'Dedupe', '--filter_options', '{window: "1s"}', '--output', 'Redis', '--output_options', JSON.stringify({ mode: 'stream', key }), '--stats'],
      { input: ndjson(events) },
    );
    expect(producer.code, producer.stderr).toBe(0);
    // Dedupe's records are made by the filter (created); the events folded into them are dropped on purpose.
    const [read, created, written, dropped, errors] = statsLine(producer.stderr)!;
    expect(read).toBe(events.length);
    expect(errors).toBe(0);
    expect(read! + created!).toBe(written! + dropped!);

    await eventually(async () => (await count(`SELECT count(*) AS n FROM ${table}`)) >= 60, '60 rows');
    first.child.kill('SIGKILL');
    await first.done;
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBeLessThan(written!);

    const second = gatherer();
    await eventually(async () => (await count(`SELECT count(DISTINCT id) AS n FROM ${table}`)) === 300, 'every event in the table');
    await eventually(async () => (await count(`SELECT sum(repeats) AS n FROM ${table}`)) === events.length, 'the repeats adding up');
    const done = await stop(second);
    expect(done.code, done.stderr).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM ${table}`)).toBe(written);
    // What the restarted gatherer wrote again is only what the first had committed and not yet acknowledged.
    for (const record of errorRecords(done.stderr)) expect(record.reason).toMatch(/duplicate key value violates unique constraint/);
    expect(Number((await redis.sendCommand(['XPENDING', key, 'message-passing']) as [number])[0])).toBe(0);
  });
});
