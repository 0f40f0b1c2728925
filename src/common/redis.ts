// What the Redis input and output share: loading the client, the url option,
// connections that reconnect with backoff and say so once, telling a failure
// worth retrying from an answer that will not change, and key names taken from
// messages (%{field}).
import { RuntimeError } from '../core/errors.js';
import type { OptionSpec } from '../core/options.js';
import type { PluginContext } from '../core/plugin.js';
import { fieldValue } from '../core/time.js';
import { backoff } from './delivery.js';
import { systemReason } from '../io/system-errors.js';

/** node-redis, loaded only when a Redis plugin is used (~0.3 s of start-up otherwise). */
export type RedisModule = typeof import('redis');
export type RedisClient = ReturnType<typeof createClient>;

export async function loadRedis(label: string): Promise<RedisModule> {
  try {
    return await import('redis');
  } catch (error) {
    throw new RuntimeError(`${label}: cannot load the redis module (${systemReason(error)}); run 'npm install' where message-passing is installed`);
  }
}

/** The field of a stream entry that holds the message: what the output writes and the input reads. */
export const ENTRY_FIELD = 'message';

export const urlOption = {
  type: 'string',
  default: 'redis://127.0.0.1:6379',
  description:
    'The Redis server: redis://[[USER]:PASSWORD@]HOST[:PORT][/DATABASE], or rediss://... for TLS.',
  example: 'redis://127.0.0.1:6379/0',
} as const satisfies OptionSpec;

/** What is wrong with a Redis url, or nothing. */
export function urlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `url: malformed '${url}' (expected redis://HOST:PORT such as redis://127.0.0.1:6379)`;
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    return `url: '${url}' must start with redis:// (or rediss:// for TLS)`;
  }
  if (parsed.hostname === '') return `url: '${url}' names no host (expected redis://HOST:PORT such as redis://127.0.0.1:6379)`;
  const database = parsed.pathname.replace(/^\//, '');
  if (database !== '' && !/^\d+$/.test(database)) return `url: the database in '${url}' must be a number (redis://HOST:PORT/0)`;
  return undefined;
}

/** The url without its password, for messages. */
export function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** Redis answers that say "not now" rather than "never": the same command may succeed later. */
const TRANSIENT_REPLIES = ['LOADING', 'BUSY', 'OOM', 'MASTERDOWN', 'READONLY', 'TRYAGAIN', 'CLUSTERDOWN', 'NOREPLICAS', 'UNBLOCKED'];

/** A failure that retrying later can fix: the connection, a timeout, or a transient answer of the server. */
export function isRetryable(redis: RedisModule, error: unknown): boolean {
  if (!(error instanceof redis.ErrorReply)) return true;
  const code = error.message.split(' ', 1)[0]!;
  return TRANSIENT_REPLIES.includes(code);
}

/** Why a Redis command or connection failed, in words. */
export function redisReason(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
  const code = (cause as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return systemReason(cause, 'address');
  const message = cause instanceof Error ? cause.message : String(cause);
  if (/socket closed unexpectedly/i.test(message)) return 'the server closed the connection';
  if (/client is offline|client is closed/i.test(message)) return 'not connected';
  return message;
}

export interface ConnectOptions {
  url: string;
  /** CLIENT SETNAME: how the connection shows in CLIENT LIST (no spaces). */
  name: string;
  /** Prefix of every line: 'Redis input', 'Redis output'. */
  label: string;
  context: PluginContext;
  /** Whether this connection speaks of losing and regaining the server (one per plugin does). */
  announce: boolean;
}

/**
 * A connected client. The first connection must succeed (a wrong url is one
 * clear line, exit 1); after that, a lost connection is reopened with backoff
 * for as long as the program runs, and commands sent meanwhile fail at once
 * (no queue grows inside the client): the plugins retry them.
 */
export async function connect(redis: RedisModule, options: ConnectOptions): Promise<RedisClient> {
  const { url, name, label, context, announce } = options;
  let connected = false;
  let lost = false;
  let firstFailure: unknown;
  const client = createClient(redis, url, name, (retries, cause) => {
    if (!connected) {
      firstFailure ??= cause;
      return cause;
    }
    return backoff(retries);
  });
  client.on('error', (error: unknown) => {
    if (!connected) {
      firstFailure ??= error;
      return;
    }
    if (!lost) {
      lost = true;
      if (announce) context.warn(`${label}: connection to ${safeUrl(url)} lost (${redisReason(error)}); reconnecting`);
    }
  });
  client.on('ready', () => {
    if (lost && announce) context.warn(`${label}: connected to ${safeUrl(url)} again`);
    lost = false;
  });
  try {
    await client.connect();
  } catch (error) {
    client.destroy();
    throw new RuntimeError(`${label}: cannot connect to ${safeUrl(url)}: ${redisReason(firstFailure ?? error)}`);
  }
  connected = true;
  return client;
}

function createClient(redis: RedisModule, url: string, name: string, reconnectStrategy: (retries: number, cause: Error) => number | Error) {
  return redis.createClient({
    url,
    name,
    // RESP2: replies as plain arrays, the shape the plugins read.
    RESP: 2,
    disableOfflineQueue: true,
    disableClientInfo: true,
    socket: { connectTimeout: 5000, reconnectStrategy },
  });
}

/** Resolves once `client` is connected, or at once when `stopping` aborts. */
export function whenReady(client: RedisClient, stopping: AbortSignal): Promise<void> | undefined {
  if (client.isReady || stopping.aborted) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      client.off('ready', done);
      stopping.removeEventListener('abort', done);
      resolve();
    };
    client.on('ready', done);
    stopping.addEventListener('abort', done, { once: true });
  });
}

/** A key or channel name with %{field} placeholders: literal text and field names, alternating. */
export class KeyTemplate {
  private readonly texts: string[] = [];
  private readonly fields: string[] = [];

  constructor(
    readonly option: string,
    readonly text: string,
  ) {
    let rest = text;
    for (let at = rest.indexOf('%{'); at >= 0; at = rest.indexOf('%{')) {
      const end = rest.indexOf('}', at);
      if (end < 0) throw new Error(`${option}: '%{' without a closing '}' in ${text}`);
      const field = rest.slice(at + 2, end);
      if (field === '') throw new Error(`${option}: empty placeholder %{} in ${text}`);
      this.texts.push(rest.slice(0, at));
      this.fields.push(field);
      rest = rest.slice(end + 1);
    }
    this.texts.push(rest);
  }

  /** The name when it holds no placeholder. */
  get fixed(): string | undefined {
    return this.fields.length === 0 ? this.text : undefined;
  }

  /** The name for one message, or why it has none. */
  resolve(message: unknown): { name: string } | { problem: string } {
    let name = this.texts[0]!;
    for (let i = 0; i < this.fields.length; i++) {
      const field = this.fields[i]!;
      const value = fieldValue(message, field);
      if (value === undefined || value === null) return { problem: `${this.option} ${this.text}: the message has no field ${field}` };
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        return { problem: `${this.option} ${this.text}: field ${field} is not a string or a number` };
      }
      const text = String(value);
      if (text === '') return { problem: `${this.option} ${this.text}: field ${field} is empty` };
      name += text + this.texts[i + 1]!;
    }
    return { name };
  }
}

/** A script run by its SHA1, loaded again (EVAL) when the server does not know it (after a restart or SCRIPT FLUSH). */
export class Script {
  private sha: string | undefined;

  constructor(readonly body: string) {}

  /** The command that runs this script with `keys` and `args`: EVALSHA once its SHA1 is known. */
  command(keys: readonly string[], args: ReadonlyArray<string | Buffer>): Array<string | Buffer> {
    const head = this.sha === undefined ? ['EVAL', this.body] : ['EVALSHA', this.sha];
    return [...head, String(keys.length), ...keys, ...args];
  }

  async load(client: RedisClient): Promise<void> {
    this.sha = String(await client.sendCommand(['SCRIPT', 'LOAD', this.body]));
  }

  /** After NOSCRIPT: send the body again next time. */
  forget(): void {
    this.sha = undefined;
  }
}

export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
