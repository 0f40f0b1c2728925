import type { Client, DatabaseError } from 'pg';
import { describe, frameCopy, plural, RuntimeError } from '../core/errors.js';
import { defineOutput, type Frame, type Message, type Output, type OutputContext } from '../core/plugin.js';
import { eventTime, fieldValue, formatDuration } from '../core/time.js';
import { backoff, DeliveryFailure, pause, waitFor, type Waiter } from '../common/delivery.js';
import { errorCode, systemReason } from '../io/system-errors.js';

const LABEL = 'Postgres output';

type PgModule = typeof import('pg');

export default defineOutput({
  summary: 'Insert each message as a row of a PostgreSQL table, in batches, one transaction each.',
  description: [
    'Each message becomes one row: `columns` maps table columns to fields of the message (a dotted name reaches into objects; a missing ' +
      'field is NULL), and `json_column` names a column (jsonb) that receives the whole message; give either or both. A value goes in as ' +
      'PostgreSQL reads text for the column\'s type; objects and lists go in as JSON (a list into an array column as an array), and a number ' +
      'into a date or time column is read as epoch seconds or milliseconds. The table must exist, with every column named, unless create_table ' +
      'is true: then a missing table is created with text columns (jsonb for json_column); create it yourself for other types and indexes.',
    'Rows are written with COPY, in one transaction per batch: up to `batch` rows, waiting at most max_delay for a batch to fill. An input that ' +
      'waits for acknowledgements (Redis, File with a checkpoint) is acknowledged only after the commit, and each of its batches is committed ' +
      'as soon as it arrives. A row the database rejects (a constraint, a value of the wrong type) goes to the error output with the database\'s ' +
      'reason, and the rest of its batch is written. A lost connection is reopened with backoff and the batch written again; a commit whose ' +
      'answer was lost is looked up (txid_status), so no batch is written twice within one run. When the database stays unreachable for ' +
      'retry_timeout, the output stops: the number of messages not written is printed and the exit status is 1.',
    'Costs: each batch is one round trip and one commit (a disk flush on the server), and each row is decoded from JSON and formatted again. ' +
      'Behind an input that waits for acknowledgements, one batch is committed at a time, so the commit latency bounds the rate: a larger ' +
      'batch on that input means fewer commits.',
  ].join('\n\n'),
  examples: [
    `message-passing --output Postgres --output_options '{url: "postgres://app@db/logs", table: "events", json_column: "doc"}'`,
    `message-passing --input Redis --input_options '{mode: "stream", key: "events"}' --output Postgres --output_options '{table: "events", columns: {at: "time", host: "host", message: "message"}, json_column: "doc"}'`,
  ],
  options: {
    url: {
      type: 'string',
      description:
        'The database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (libpq parameters such as ?sslmode=require may follow). Without it, the PG* environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) and their defaults.',
      example: 'postgres://postgres@127.0.0.1:5432/logs',
    },
    table: {
      type: 'string',
      required: true,
      description: 'The table to insert into, as named in the database (case counts), optionally with its schema: "events" or "logs.events".',
      example: 'events',
    },
    columns: {
      type: 'any',
      description: 'Columns to fill and the field each takes, as {column: "field.path"}.',
      example: '{at: "time", host: "host.name", message: "message"}',
    },
    json_column: {
      type: 'string',
      description: 'A column (jsonb, json or text) that receives the whole message as JSON.',
      example: 'doc',
    },
    create_table: {
      type: 'boolean',
      default: false,
      description: 'Create the table when it does not exist (text columns, jsonb for json_column).',
    },
    batch: {
      type: 'integer',
      min: 1,
      default: 1000,
      description: 'Most rows written in one transaction.',
    },
    max_delay: {
      type: 'duration',
      default: '1s',
      description: 'Longest time a row waits for its batch to fill before it is written.',
    },
    retry_timeout: {
      type: 'duration',
      min: '1ms',
      default: '30s',
      description: 'How long a batch may fail to be written (database unreachable) before the output gives up, reports how many messages were not written, and exits 1.',
    },
  },
  check(o) {
    if (o.url !== undefined && !/^(postgres|postgresql):\/\//.test(o.url)) {
      return `url: '${o.url}' must start with postgres:// (postgres://USER@HOST:PORT/DATABASE)`;
    }
    if (o.columns === undefined && o.json_column === undefined) {
      return 'give columns ({column: "field", ...}), json_column ("doc": the whole message), or both';
    }
    if (o.columns !== undefined) {
      const columns = o.columns;
      if (typeof columns !== 'object' || columns === null || Array.isArray(columns) || Object.keys(columns).length === 0) {
        return 'columns must be an object such as {at: "time", host: "host.name"}';
      }
      for (const [column, field] of Object.entries(columns)) {
        if (typeof field !== 'string' || field === '') return `columns: the field of column ${column} must be a field name such as "host.name"`;
      }
      if (o.json_column !== undefined && Object.hasOwn(columns, o.json_column)) return `json_column ${o.json_column} is also in columns; name it once`;
    }
    if (o.table === '' || o.table.split('.').length > 2 || o.table.split('.').some((part) => part === '')) {
      return `table: '${o.table}' must be a table name, or SCHEMA.TABLE`;
    }
    return undefined;
  },
  async create(o, context) {
    let pg: PgModule;
    try {
      pg = await import('pg');
    } catch (error) {
      throw new RuntimeError(`${LABEL}: cannot load the pg module (${systemReason(error)}); run 'npm install' where message-passing is installed`);
    }
    const output = new PostgresOutput(pg, {
      url: o.url,
      table: o.table,
      columns: Object.entries((o.columns ?? {}) as Record<string, string>),
      jsonColumn: o.json_column,
      createTable: o.create_table,
      batch: o.batch,
      maxDelay: o.max_delay,
      retryTimeout: o.retry_timeout,
    }, context);
    await output.start();
    return output;
  },
});

interface Settings {
  url: string | undefined;
  table: string;
  columns: Array<[column: string, field: string]>;
  jsonColumn: string | undefined;
  createTable: boolean;
  batch: number;
  maxDelay: number;
  retryTimeout: number;
}

/** How a column takes values, from its type. */
export type Kind = 'json' | 'array' | 'time' | 'plain';

/** One message as one line of COPY text, and the frame an error record shows. */
interface Row {
  line: string;
  frame: Frame;
}

interface Rejected {
  row: Row;
  error: unknown;
}

/** The commit was sent and its answer lost with the connection: whether it happened is asked again (txid_status). */
class CommitUnknown extends Error {
  constructor(
    readonly txid: string,
    readonly rejected: Rejected[],
    override readonly cause: unknown,
  ) {
    super(describe(cause));
  }
}

/** A failure retrying cannot fix (a dropped table, a permission): the output stops. */
class Fatal extends Error {}

class PostgresOutput implements Output {
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private target = '';
  private quotedTable = '';
  private copyText = '';
  private kinds: Kind[] = [];
  /** Rows waiting for a transaction. */
  private pending: Row[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Messages written and not yet committed (or reported). */
  private unacknowledged = 0;
  private roomWaiters: Waiter[] = [];
  private settledWaiters: Waiter[] = [];
  private failure: DeliveryFailure | undefined;
  /** Set while the connection is lost, so that its loss and return are said once. */
  private lost = false;

  constructor(
    private readonly pg: PgModule,
    private readonly settings: Settings,
    private readonly context: OutputContext,
  ) {}

  /** Connects and checks the table and its columns, so that a mistake is one line before anything runs. */
  async start(): Promise<void> {
    const { table, columns, jsonColumn, createTable } = this.settings;
    this.quotedTable = table.split('.').map((part) => this.pg.escapeIdentifier(part)).join('.');
    let client: Client;
    try {
      client = await this.open();
    } catch (error) {
      throw new RuntimeError(`${LABEL}: cannot connect to ${this.target}: ${pgReason(error)}`);
    }
    try {
      const found = await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid AS oid', [this.quotedTable]);
      let oid = found.rows[0]?.oid ?? null;
      if (oid === null) {
        if (!createTable) throw new RuntimeError(`${LABEL}: table ${table} does not exist in ${this.target} (create it, or set create_table: true)`);
        const definitions = [
          ...columns.map(([column]) => `${this.pg.escapeIdentifier(column)} text`),
          ...(jsonColumn === undefined ? [] : [`${this.pg.escapeIdentifier(jsonColumn)} jsonb`]),
        ];
        await client.query(`CREATE TABLE IF NOT EXISTS ${this.quotedTable} (${definitions.join(', ')})`);
        oid = (await client.query<{ oid: string }>('SELECT to_regclass($1)::oid AS oid', [this.quotedTable])).rows[0]!.oid;
      }
      const described = await client.query<{ name: string; type: string; category: string }>(
        `SELECT a.attname AS name, t.typname AS type, t.typcategory AS category
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
        [oid],
      );
      const types = new Map(described.rows.map((row) => [row.name, row]));
      const names = [...columns.map(([column]) => column), ...(jsonColumn === undefined ? [] : [jsonColumn])];
      for (const name of names) {
        if (!types.has(name)) {
          const known = described.rows.map((row) => row.name);
          const listed = known.length > 12 ? `${known.slice(0, 12).join(', ')}, …` : known.join(', ');
          throw new RuntimeError(`${LABEL}: table ${table} has no column ${name} (its columns: ${listed})`);
        }
      }
      this.kinds = columns.map(([column]) => kindOf(types.get(column)!));
      const allowed = await client.query<{ ok: boolean }>(`SELECT has_table_privilege($1::oid, 'INSERT') AS ok`, [oid]);
      if (!allowed.rows[0]?.ok) throw new RuntimeError(`${LABEL}: ${this.target}: user ${client.user ?? ''} may not insert into table ${table} (GRANT INSERT)`);
      this.copyText = `COPY ${this.quotedTable} (${names.map((name) => this.pg.escapeIdentifier(name)).join(', ')}) FROM STDIN`;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (error instanceof RuntimeError) throw error;
      throw new RuntimeError(`${LABEL}: ${this.target}: table ${table}: ${pgReason(error)}`);
    }
  }

  /** A new connection; a connection that fails later is dropped here and opened again on the next batch. */
  private async open(): Promise<Client> {
    const client = new this.pg.Client({
      connectionString: this.settings.url,
      application_name: 'message-passing',
      connectionTimeoutMillis: 10_000,
    });
    const { host, port, database, user } = client as unknown as { host: string; port: number; database: string; user: string };
    this.target = `postgres://${user}@${host.startsWith('/') ? `[${host}]` : host}:${port}/${database}`;
    client.on('error', (error: Error) => this.connectionLost(client, error));
    try {
      await client.connect();
    } catch (error) {
      client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
    if (this.lost) {
      this.lost = false;
      this.context.warn(`${LABEL}: connected to ${this.target} again`);
    }
    return client;
  }

  private connectionLost(client: Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    if (!this.lost) {
      this.lost = true;
      this.context.warn(`${LABEL}: connection to ${this.target} lost (${pgReason(error)}); reconnecting`);
    }
  }

  private connection(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  write(frames: readonly Frame[], messages: readonly Message[]): void | Promise<void> {
    if (this.failure) {
      this.unacknowledged += frames.length;
      throw this.failure;
    }
    for (let i = 0; i < messages.length; i++) {
      const line = this.line(messages[i]);
      if (typeof line !== 'string') {
        this.context.reportError({ error: 'output', reason: `${LABEL}: ${line.problem}`, source: `postgres:${this.settings.table}`, ...frameCopy(frames[i]!) });
        continue;
      }
      this.pending.push({ line, frame: frames[i]! });
      this.unacknowledged++;
    }
    if (this.pending.length >= this.settings.batch) this.flush();
    else if (this.pending.length > 0 && this.timer === undefined && this.flushing === undefined) {
      this.timer = setTimeout(() => this.flush(), this.settings.maxDelay);
    }
    if (this.unacknowledged <= 2 * this.settings.batch) return;
    return waitFor(this.roomWaiters);
  }

  /** Messages not yet committed (or reported); after close(), those left behind. */
  queued(): number {
    return this.unacknowledged;
  }

  settled(): void | Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.unacknowledged === 0) return;
    // An input waits for these rows before it sends more: no use waiting for the batch to fill.
    this.flush();
    return waitFor(this.settledWaiters);
  }

  async close(): Promise<void> {
    if (this.unacknowledged > 0 && !this.failure) {
      this.flush();
      await waitFor(this.settledWaiters).catch(() => undefined);
    }
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
    if (this.failure) throw this.failure;
  }

  /** The COPY text line of one message, or why it has none. */
  private line(message: Message): string | { problem: string } {
    const { columns, jsonColumn } = this.settings;
    const cells: string[] = [];
    if (columns.length > 0) {
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        return { problem: `the message is not a JSON object, so it has no fields for columns (${columns.map(([column]) => column).join(', ')})` };
      }
      for (let i = 0; i < columns.length; i++) {
        const text = cellText(fieldValue(message, columns[i]![1]), this.kinds[i]!);
        cells.push(this.kinds[i] === 'json' && text !== null ? copyJson(text) : copyCell(text));
      }
    }
    if (jsonColumn !== undefined) {
      let json: string | undefined;
      try {
        json = JSON.stringify(message);
      } catch (error) {
        return { problem: `cannot write the message as JSON: ${describe(error)}` };
      }
      if (json === undefined) return { problem: 'cannot write the message as JSON' };
      cells.push(copyJson(json));
    }
    return cells.join('\t') + '\n';
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.flushAll();
  }

  private async flushAll(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.failure) {
        const rows = this.pending.splice(0, this.settings.batch);
        try {
          await this.writeBatch(rows);
        } catch (error) {
          this.giveUp(error);
          break;
        }
        this.unacknowledged -= rows.length;
        if (this.unacknowledged <= 2 * this.settings.batch) for (const waiter of this.roomWaiters.splice(0)) waiter.resolve();
        if (this.unacknowledged === 0) for (const waiter of this.settledWaiters.splice(0)) waiter.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private giveUp(error: unknown): void {
    const reason =
      error instanceof Fatal
        ? error.message
        : `${pgReason(error)}; gave up after retry_timeout (${formatDuration(this.settings.retryTimeout)})`;
    this.failure = new DeliveryFailure(
      () => `${LABEL}: ${plural(this.unacknowledged, 'message')} could not be written to table ${this.settings.table} of ${this.target}: ${reason}`,
    );
    for (const waiter of this.roomWaiters.splice(0)) waiter.reject(this.failure);
    for (const waiter of this.settledWaiters.splice(0)) waiter.reject(this.failure);
  }

  /** Writes `rows` in one transaction, reconnecting and trying again until it is done or retry_timeout runs out. */
  private async writeBatch(rows: Row[]): Promise<void> {
    const started = Date.now();
    let unknown: CommitUnknown | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        const client = await this.connection();
        if (unknown) {
          const status = await this.commitStatus(client, unknown.txid);
          if (status === 'committed') return this.report(unknown.rejected);
          unknown = undefined;
        }
        return this.report(await this.transaction(client, rows));
      } catch (error) {
        if (error instanceof CommitUnknown) unknown = error;
        const cause = error instanceof CommitUnknown ? error.cause : error;
        if (!isRetryable(cause)) throw new Fatal(pgReason(cause));
        if (Date.now() - started >= this.settings.retryTimeout) throw cause;
        this.dropClient(cause);
        await pause(backoff(attempt));
      }
    }
  }

  private dropClient(error: unknown): void {
    if (this.client) this.connectionLost(this.client, error);
  }

  /** 'committed', 'aborted', or null when the server no longer knows; waits while it is still in progress. */
  private async commitStatus(client: Client, txid: string): Promise<string | null> {
    for (;;) {
      const result = await client.query<{ status: string | null }>('SELECT txid_status($1) AS status', [txid]);
      const status = result.rows[0]?.status ?? null;
      if (status !== 'in progress') return status;
      await pause(50);
    }
  }

  /**
   * One transaction in one round trip: BEGIN, its id, the rows in one COPY and
   * COMMIT go as one query (three round trips took 55 ms per 1000 rows on a
   * busy machine, 15 of them for BEGIN alone). When the database rejects a row,
   * again with the rejected rows left out.
   */
  private async transaction(client: Client, rows: Row[]): Promise<Rejected[]> {
    const progress: CopyProgress = { tags: [] };
    try {
      await copy(client, `BEGIN; SELECT txid_current()::text; ${this.copyText}; COMMIT`, rows, progress);
    } catch (error) {
      if (isRowError(error) && !progress.tags.some((tag) => tag.startsWith('COPY'))) {
        await client.query('ROLLBACK');
        return this.transactionLeavingOut(client, rows);
      }
      // The connection went: the commit may have been made if the rows were sent.
      if (progress.txid !== undefined && isRetryable(error)) throw new CommitUnknown(progress.txid, [], error);
      if (!isRetryable(error)) await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    if (!progress.tags.includes('COMMIT')) throw new Fatal(`the database did not commit (it answered ${progress.tags.join(', ')})`);
    return [];
  }

  /**
   * Finds the rows the database rejects by halves, each half under a
   * savepoint: a few COPYs per bad row instead of one statement per row.
   */
  private async transactionLeavingOut(client: Client, rows: Row[]): Promise<Rejected[]> {
    const txid = await this.begin(client);
    const rejected: Rejected[] = [];
    const attempt = async (part: Row[]): Promise<void> => {
      await client.query('SAVEPOINT part');
      try {
        await copy(client, this.copyText, part, { tags: [] });
        await client.query('RELEASE SAVEPOINT part');
        return;
      } catch (error) {
        if (!isRowError(error)) throw error;
        await client.query('ROLLBACK TO SAVEPOINT part; RELEASE SAVEPOINT part');
        if (part.length === 1) {
          rejected.push({ row: part[0]!, error });
          return;
        }
      }
      const middle = part.length >> 1;
      await attempt(part.slice(0, middle));
      await attempt(part.slice(middle));
    };
    await attempt(rows);
    await this.commit(client, txid, rejected);
    return rejected;
  }

  private async begin(client: Client): Promise<string> {
    const results = (await client.query('BEGIN; SELECT txid_current()::text AS txid')) as unknown as Array<{ rows: Array<{ txid: string }> }>;
    return results[1]!.rows[0]!.txid;
  }

  private async commit(client: Client, txid: string, rejected: Rejected[]): Promise<void> {
    try {
      await client.query('COMMIT');
    } catch (error) {
      // Even an error from the server (the backend terminated) may come after the commit was made: ask.
      if (isRetryable(error)) throw new CommitUnknown(txid, rejected, error);
      throw error;
    }
  }

  /** Rows the database rejected go to the error output once their transaction committed. */
  private report(rejected: Rejected[]): void {
    for (const { row, error } of rejected) {
      this.context.reportError({
        error: 'output',
        reason: `${LABEL}: ${rowReason(error)}`,
        source: `postgres:${this.settings.table}`,
        ...frameCopy(row.frame),
      });
    }
  }
}

function kindOf(column: { type: string; category: string }): Kind {
  if (column.type === 'json' || column.type === 'jsonb') return 'json';
  if (column.category === 'A') return 'array';
  if (column.category === 'D') return 'time';
  return 'plain';
}

/** A value as PostgreSQL reads it for a column of kind `kind`; null for NULL. */
export function cellText(value: unknown, kind: Kind): string | null {
  if (value === undefined || value === null) return null;
  if (kind === 'json') return JSON.stringify(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && kind === 'time') {
    const ms = eventTime(value);
    return ms === undefined ? String(value) : new Date(ms).toISOString();
  }
  if (Array.isArray(value) && kind === 'array') return arrayLiteral(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A list as a PostgreSQL array literal: {"a","b",NULL}. */
function arrayLiteral(list: readonly unknown[]): string {
  const items = list.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return arrayLiteral(item);
    const text = typeof item === 'object' ? JSON.stringify(item) : String(item);
    return `"${text.replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${items.join(',')}}`;
}

const COPY_SPECIAL = /[\\\n\r\t]/;

/** copyCell for JSON text, which has no raw newline, CR or tab (JSON writes them \n, \r, \t): only backslashes are doubled. */
export function copyJson(json: string): string {
  return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json;
}

/** One cell of COPY's text format: backslash, newline, carriage return and tab escaped; \N for NULL. */
export function copyCell(text: string | null): string {
  if (text === null) return '\\N';
  if (!COPY_SPECIAL.test(text)) return text;
  return text.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}

/** What a COPY query got done before it ended: its statements' tags (BEGIN, SELECT 1, COPY 1000, COMMIT) and the transaction id it read. */
interface CopyProgress {
  tags: string[];
  txid?: string;
}

/**
 * A query holding COPY ... FROM STDIN, through pg's "submittable" interface:
 * pg hands over the connection once the server is ready for the data. (COPY
 * moved 76,000 rows/s here against 24,000 for a multi-row INSERT and 30,000 for
 * INSERT ... unnest.) The query may hold other statements around the COPY;
 * a row one of them returns is taken as the transaction id.
 */
function copy(client: Client, text: string, rows: readonly Row[], progress: CopyProgress): Promise<void> {
  let data = '';
  for (const row of rows) data += row.line;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (error: unknown) => {
      if (done) return;
      done = true;
      if (error) reject(error);
      else resolve();
    };
    const submittable = {
      submit(connection: { query(text: string): void }) {
        connection.query(text);
      },
      handleCopyInResponse(connection: { stream: { write(chunk: Buffer): boolean }; endCopyFrom(): void }) {
        // One CopyData message written straight into its own buffer: pg's sendCopyFromChunk copies
        // the data twice more (17% of the time over 200,000 rows).
        const length = Buffer.byteLength(data);
        const message = Buffer.allocUnsafe(5 + length);
        message[0] = 0x64; // 'd'
        message.writeUInt32BE(4 + length, 1);
        message.write(data, 5, 'utf8');
        connection.stream.write(message);
        connection.endCopyFrom();
      },
      handleDataRow(message: { fields: Array<string | null> }) {
        progress.txid = message.fields[0] ?? undefined;
      },
      handleCommandComplete(message: { text: string }) {
        progress.tags.push(message.text);
      },
      handleError: (error: unknown) => finish(error),
      handleReadyForQuery: () => finish(undefined),
      handleRowDescription() {},
      handleEmptyQuery() {},
      handlePortalSuspended() {},
      handleCopyData() {},
    };
    client.query(submittable as unknown as Parameters<Client['query']>[0]);
  });
}

const sqlState = (error: unknown): string | undefined => {
  const code = errorCode(error);
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
};

/** A rejection of the data of one row: a data exception (22) or a constraint (23). */
function isRowError(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && (state.startsWith('22') || state.startsWith('23'));
}

/**
 * Worth trying again on a new connection: the connection went (no SQLSTATE, or
 * class 08, or the server shutting down or terminating it: 57P01-57P03), too
 * many connections or no memory (53), a serialization failure or deadlock (40),
 * a lock not available (55P03).
 */
function isRetryable(error: unknown): boolean {
  const state = sqlState(error);
  if (state === undefined) return true;
  return state.startsWith('08') || state.startsWith('53') || state.startsWith('40') || ['57P01', '57P02', '57P03', '55P03', '58030'].includes(state);
}

/** Why a connection or a statement failed, in words. */
function pgReason(error: unknown): string {
  if (sqlState(error) === undefined && errorCode(error) !== undefined) return systemReason(error, 'address');
  const message = describe(error);
  if (/Connection terminated unexpectedly|not queryable/i.test(message)) return 'the server closed the connection';
  return message;
}

/** The database's reason for rejecting a row, with its detail (which key, which value). */
function rowReason(error: unknown): string {
  const { detail, column, where } = error as Partial<DatabaseError>;
  // COPY says where: "COPY events, line 1, column id: \"zz\"".
  const named = column ?? (where ? /, column ([^:]+):/.exec(where)?.[1] : undefined);
  return [describe(error), named ? `column ${named}` : undefined, detail].filter(Boolean).join('; ');
}
