import { describe, frameCopy, plural, RuntimeError } from '../core/errors.js';
import { defineOutput, type Frame, type Message, type Output, type OutputContext } from '../core/plugin.js';
import { formatDuration } from '../core/time.js';
import { backoff, DeliveryFailure, waitFor, type Waiter } from '../common/delivery.js';
import {
  connect, ENTRY_FIELD, isNoScript, isRetryable, KeyTemplate, loadRedis, redisReason, safeUrl, Script, urlOption, urlProblem, type RedisClient, type RedisModule,
} from '../common/redis.js';

const LABEL = 'Redis output';

// One script call appends a whole chunk: a command per message costs the client
// ~15 µs each (65,000/s measured), a chunk of 500 in one call ~4 µs per message.
const XADD = new Script(
  `local maxlen = tonumber(ARGV[1])
for i = 2, #ARGV do
  if maxlen > 0 then redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', '${ENTRY_FIELD}', ARGV[i])
  else redis.call('XADD', KEYS[1], '*', '${ENTRY_FIELD}', ARGV[i]) end
end
return #ARGV - 1`,
);
const PUBLISH = new Script(
  `local receivers = 0
for i = 2, #ARGV do receivers = receivers + redis.call('PUBLISH', ARGV[1], ARGV[i]) end
return receivers`,
);

/** Messages sent and not yet acknowledged by Redis, in chunks of `batch`, beyond which write() waits. */
const WINDOW_CHUNKS = 8;

export default defineOutput({
  summary: 'Write each message to Redis: pushed on a list, added to a stream, or published on a channel.',
  description: [
    'mode "list" appends messages to a list (RPUSH), which the Redis input in list mode takes as a reliable queue; ' +
      'mode "stream" adds each message as a stream entry whose field "message" holds it (XADD), trimmed to about max_len entries when given; ' +
      'mode "pubsub" publishes each message on a channel (PUBLISH): Redis hands it to the subscribers connected at that moment and to nobody else ' +
      '(a warning says so when a message found no subscriber). `key` and `channel` may hold %{field}, replaced by that field of each message ' +
      '(a dotted name reaches into objects); a message without the field goes to the error output.',
    'Messages are sent in pipelined chunks of `batch` (one command or script call per chunk); at most 8 chunks wait for Redis at a time, ' +
      'beyond which the chain waits (backpressure). A lost connection is reopened with backoff, and what it had not acknowledged is sent again ' +
      'in order, so a message whose acknowledgement was lost with the connection may be stored twice, never lost. A server answer that will ' +
      'not change (a key of another type) sends those messages to the error output with Redis\'s reason. When Redis stays unreachable for ' +
      'retry_timeout, or at exit, the output stops: the number of messages Redis did not acknowledge is printed and the exit status is 1. ' +
      'An input that acknowledges (Redis, File with a checkpoint) is told a message is out only once Redis acknowledged it.',
  ].join('\n\n'),
  examples: [
    `message-passing --output Redis --output_options '{mode: "stream", key: "events", max_len: 1000000}'`,
    `message-passing --output Redis --output_options '{mode: "list", key: "queue:%{service}"}'`,
    `message-passing --output Redis --output_options '{mode: "pubsub", channel: "logs"}'`,
  ],
  options: {
    url: urlOption,
    mode: {
      type: 'string',
      choices: ['list', 'pubsub', 'stream'],
      description: 'Where messages go: a list (RPUSH), a channel (PUBLISH) or a stream (XADD); without it, "list" when key is given and "pubsub" when channel is.',
    },
    key: {
      type: 'string',
      description: 'The list or stream (modes list and stream); %{field} is replaced by that field of each message.',
      example: 'events',
    },
    channel: {
      type: 'string',
      aliases: ['topic'],
      description: 'The channel to publish on (mode pubsub); %{field} is replaced by that field of each message.',
      example: 'logs',
    },
    max_len: {
      type: 'integer',
      min: 1,
      description: 'Mode stream: keep about this many entries, trimming the oldest as new ones come (XADD MAXLEN ~); without it the stream is not trimmed.',
    },
    batch: {
      type: 'integer',
      min: 1,
      default: 500,
      description: 'Most messages sent in one command (a pipelined chunk).',
    },
    retry_timeout: {
      type: 'duration',
      min: '1ms',
      default: '30s',
      description: 'How long messages may fail to reach Redis (unreachable, or answering "not now") before the output gives up, reports how many were not written, and exits 1.',
    },
  },
  check(o) {
    const problem = urlProblem(o.url);
    if (problem) return problem;
    const mode = modeOf(o);
    if (mode === undefined) return 'give key (with mode "list" or "stream") or channel (mode "pubsub")';
    if (mode === 'pubsub') {
      if (o.channel === undefined) return 'mode "pubsub" needs channel (e.g. {mode: "pubsub", channel: "logs"})';
      if (o.key !== undefined) return 'key applies to modes list and stream; mode "pubsub" publishes on channel';
    } else {
      if (o.key === undefined) return `mode "${mode}" needs key (e.g. {mode: "${mode}", key: "events"})`;
      if (o.channel !== undefined) return `channel applies to mode pubsub; mode "${mode}" writes to key`;
    }
    if (o.max_len !== undefined && mode !== 'stream') return 'max_len applies to mode stream only';
    try {
      new KeyTemplate(mode === 'pubsub' ? 'channel' : 'key', (mode === 'pubsub' ? o.channel : o.key)!);
    } catch (error) {
      return describe(error);
    }
    return undefined;
  },
  async create(o, context) {
    const redis = await loadRedis(LABEL);
    const mode = modeOf(o)!;
    const template = new KeyTemplate(mode === 'pubsub' ? 'channel' : 'key', (mode === 'pubsub' ? o.channel : o.key)!);
    const client = await connect(redis, {
      url: o.url,
      name: `message-passing-output-${process.pid}`,
      label: LABEL,
      context,
      announce: true,
    });
    const output = new RedisOutput(redis, client, { ...o, mode, template }, context);
    try {
      await output.start();
    } catch (error) {
      client.destroy();
      throw error;
    }
    return output;
  },
});

type Mode = 'list' | 'pubsub' | 'stream';

function modeOf(o: { mode?: Mode | undefined; key?: string | undefined; channel?: string | undefined }): Mode | undefined {
  if (o.mode !== undefined) return o.mode;
  if (o.channel !== undefined) return 'pubsub';
  if (o.key !== undefined) return 'list';
  return undefined;
}

interface Settings {
  url: string;
  mode: Mode;
  template: KeyTemplate;
  max_len: number | undefined;
  batch: number;
  retry_timeout: number;
}

/** One chunk of messages for one key, sent as one command. */
interface Chunk {
  /** Order of sending: chunks sent again keep their order. */
  seq: number;
  key: string;
  frames: Frame[];
  /** When it first failed, for retry_timeout. */
  failingSince?: number;
}

class RedisOutput implements Output {
  readonly passThrough: 'frames' | undefined;
  /** Chunks to send, in order. */
  private queue: Chunk[] = [];
  /** Chunks sent and not yet answered. */
  private readonly inFlight = new Set<Chunk>();
  /** Chunks that failed and wait for the next attempt. */
  private failed: Chunk[] = [];
  /** Messages written and not yet acknowledged by Redis. */
  private unacknowledged = 0;
  private seq = 0;
  private attempt = 0;
  /** A retry is scheduled: nothing new is sent until the failed chunks are sent again, in order. */
  private retrying = false;
  private failure: DeliveryFailure | undefined;
  private roomWaiters: Waiter[] = [];
  private settledWaiters: Waiter[] = [];
  private warnedNoSubscriber = false;
  private warnedTransient = false;
  private closed = false;
  private readonly window: number;

  constructor(
    private readonly redis: RedisModule,
    private readonly client: RedisClient,
    private readonly settings: Settings,
    private readonly context: OutputContext,
  ) {
    // Frames may come as bytes only when nothing is read from the messages.
    this.passThrough = settings.template.fixed === undefined ? undefined : 'frames';
    this.window = WINDOW_CHUNKS * settings.batch;
  }

  /** A fixed key must be of the mode's type (or not exist yet): a wrong one is a configuration mistake, said before anything runs. */
  async start(): Promise<void> {
    const { mode, template } = this.settings;
    if (mode === 'stream') await XADD.load(this.client);
    if (mode === 'pubsub') await PUBLISH.load(this.client);
    const key = template.fixed;
    if (key === undefined || mode === 'pubsub') return;
    const type = String(await this.client.sendCommand(['TYPE', key]));
    if (type !== 'none' && type !== mode) {
      throw new RuntimeError(`${LABEL}: key ${key} holds a ${type}, not a ${mode} (choose another key, or mode "${type === 'list' || type === 'stream' ? type : mode}")`);
    }
  }

  write(frames: readonly Frame[], messages: readonly Message[]): void | Promise<void> {
    if (this.failure) {
      this.unacknowledged += frames.length;
      throw this.failure;
    }
    const { template, batch } = this.settings;
    const fixed = template.fixed;
    if (fixed !== undefined) {
      for (let from = 0; from < frames.length; from += batch) this.enqueue(fixed, frames.slice(from, from + batch));
    } else {
      const byKey = new Map<string, Frame[]>();
      for (let i = 0; i < frames.length; i++) {
        const resolved = template.resolve(messages[i]);
        if ('problem' in resolved) {
          this.context.reportError({ error: 'output', reason: `${LABEL}: ${resolved.problem}`, source: 'redis', ...frameCopy(frames[i]!) });
          continue;
        }
        let list = byKey.get(resolved.name);
        if (!list) byKey.set(resolved.name, (list = []));
        list.push(frames[i]!);
        if (list.length === batch) {
          this.enqueue(resolved.name, list);
          byKey.delete(resolved.name);
        }
      }
      for (const [key, list] of byKey) this.enqueue(key, list);
    }
    this.pump();
    if (this.unacknowledged <= this.window) return;
    return waitFor(this.roomWaiters);
  }

  /** Messages not yet acknowledged by Redis; after close(), those left behind. */
  queued(): number {
    return this.unacknowledged;
  }

  settled(): void | Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.unacknowledged === 0) return;
    return waitFor(this.settledWaiters);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.unacknowledged > 0 && !this.failure) {
      await waitFor(this.settledWaiters).catch(() => undefined);
    }
    this.closed = true;
    await this.client.close().catch(() => this.client.destroy());
    if (this.failure) throw this.failure;
  }

  private enqueue(key: string, frames: Frame[]): void {
    this.queue.push({ seq: this.seq++, key, frames });
    this.unacknowledged += frames.length;
  }

  private pump(): void {
    while (!this.retrying && this.queue.length > 0) this.send(this.queue.shift()!);
  }

  private command(chunk: Chunk): Array<string | Buffer> {
    const { mode, max_len } = this.settings;
    if (mode === 'list') return ['RPUSH', chunk.key, ...chunk.frames];
    if (mode === 'stream') return XADD.command([chunk.key], [String(max_len ?? 0), ...chunk.frames]);
    return PUBLISH.command([], [chunk.key, ...chunk.frames]);
  }

  private send(chunk: Chunk): void {
    this.inFlight.add(chunk);
    this.client.sendCommand(this.command(chunk)).then(
      (reply) => this.delivered(chunk, reply),
      (error: unknown) => this.sendFailed(chunk, error),
    );
  }

  private delivered(chunk: Chunk, reply: unknown): void {
    this.inFlight.delete(chunk);
    this.attempt = 0;
    this.warnedTransient = false;
    if (this.settings.mode === 'pubsub' && reply === 0 && !this.warnedNoSubscriber) {
      this.warnedNoSubscriber = true;
      this.context.warn(`${LABEL}: no subscriber on channel ${chunk.key}: Redis drops what it publishes to nobody (start the subscribers first, or use mode "list" or "stream")`);
    }
    this.acknowledged(chunk.frames.length);
  }

  private sendFailed(chunk: Chunk, error: unknown): void {
    this.inFlight.delete(chunk);
    if (this.closed || this.failure) return;
    if (isNoScript(error)) {
      // Redis restarted or its scripts were flushed: send the script's body again.
      (this.settings.mode === 'stream' ? XADD : PUBLISH).forget();
      this.queue.unshift(chunk);
      this.pump();
      return;
    }
    if (!isRetryable(this.redis, error)) {
      // An answer that will not change for these messages (WRONGTYPE): they go to the error output.
      for (const frame of chunk.frames) {
        this.context.reportError({ error: 'output', reason: `${LABEL}: ${describe(error)} (key ${chunk.key})`, source: `redis:${chunk.key}`, ...frameCopy(frame) });
      }
      this.acknowledged(chunk.frames.length);
      return;
    }
    const now = Date.now();
    chunk.failingSince ??= now;
    if (now - chunk.failingSince >= this.settings.retry_timeout) {
      this.giveUp(error);
      return;
    }
    if (error instanceof this.redis.ErrorReply && !this.warnedTransient) {
      this.warnedTransient = true;
      this.context.warn(`${LABEL}: Redis answered ${describe(error)}; trying again`);
    }
    this.failed.push(chunk);
    if (this.retrying) return;
    this.retrying = true;
    // Not unref'd: at the end, these timers are what keeps the program alive until Redis answers or retry_timeout runs out.
    setTimeout(() => this.retry(), backoff(this.attempt++));
  }

  /** Sends the failed chunks again, in their first order, once every chunk in flight has its answer. */
  private retry(): void {
    if (this.closed || this.failure) return;
    if (this.inFlight.size > 0) {
      setTimeout(() => this.retry(), 10);
      return;
    }
    const again = this.failed.sort((a, b) => a.seq - b.seq);
    this.failed = [];
    this.queue.unshift(...again);
    this.retrying = false;
    this.pump();
  }

  private giveUp(error: unknown): void {
    const reason = `${redisReason(error)}; gave up after retry_timeout (${formatDuration(this.settings.retry_timeout)})`;
    this.failure = new DeliveryFailure(() => `${LABEL}: ${plural(this.unacknowledged, 'message')} could not be delivered to ${safeUrl(this.settings.url)}: ${reason}`);
    // Rejected, never resolved: an input waiting on them must not acknowledge what Redis did not take.
    for (const waiter of this.roomWaiters.splice(0)) waiter.reject(this.failure);
    for (const waiter of this.settledWaiters.splice(0)) waiter.reject(this.failure);
  }

  private acknowledged(count: number): void {
    this.unacknowledged -= count;
    if (this.unacknowledged <= this.window) for (const waiter of this.roomWaiters.splice(0)) waiter.resolve();
    if (this.unacknowledged === 0) for (const waiter of this.settledWaiters.splice(0)) waiter.resolve();
  }
}
