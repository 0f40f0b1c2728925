import { hostname } from 'node:os';
import { describe, plural, RuntimeError } from '../core/errors.js';
import { defineInput, type Input, type InputContext } from '../core/plugin.js';
import { formatDuration } from '../core/time.js';
import { errorCode } from '../io/system-errors.js';
import { backoff, pause } from '../common/delivery.js';
import {
  connect, ENTRY_FIELD, isNoScript, isRetryable, loadRedis, safeUrl, Script, urlOption, urlProblem, whenReady, type RedisClient, type RedisModule,
} from '../common/redis.js';

const LABEL = 'Redis input';

const ENTRY_FIELD_BYTES = Buffer.from(ENTRY_FIELD);

/** How long close() still tries to acknowledge what went out when Redis does not answer. */
const CLOSE_ACK_WAIT_MS = 5000;

/** Pub/sub messages queued while the chain is busy, beyond which new ones are dropped (pub/sub cannot wait). */
const PUBSUB_QUEUE_MIN = 10_000;

/** Takes up to ARGV[1] messages from the head of the queue into this consumer's processing list, atomically each. */
const TAKE = new Script(
  `local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local message = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not message then break end
  taken[i] = message
end
return taken`,
);
/** Removes acknowledged messages from the processing list (one occurrence each: equal messages are interchangeable). */
const ACK = new Script(`for i = 1, #ARGV do redis.call('LREM', KEYS[1], 1, ARGV[i]) end return #ARGV`);
/**
 * Puts the processing list of a consumer that is gone (its lease key expired,
 * or ARGV[2] 'gone': its process is known to be dead) back at the head of the
 * queue, in its order, so it is taken first.
 */
const RECLAIM = new Script(
  `if ARGV[2] == 'gone' then redis.call('DEL', KEYS[4])
elseif redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do moved = moved + 1 end
redis.call('SREM', KEYS[3], ARGV[1])
return moved`,
);
/** At a clean end: the lease goes, and so does the consumer once its processing list is empty. */
const FINISH = new Script(
  `redis.call('DEL', KEYS[2])
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) return 1 end
return 0`,
);

export default defineInput({
  summary: 'Read messages from Redis: a list as a reliable queue, a stream through a consumer group, or pub/sub channels.',
  description: [
    'mode "list" is a reliable queue: each message is moved atomically (LMOVE) from the head of the list `key` into this consumer\'s ' +
      'processing list KEY:processing:CONSUMER, and removed from it once the output has it, a filter dropped it, or it went to the error output. ' +
      'A consumer holds a lease (KEY:alive:CONSUMER, renewed while it runs, kept claim_idle); the processing list of a consumer whose lease ran out ' +
      '(killed, crashed) is put back at the head of the queue by the next consumer that starts or looks (every claim_idle / 2); that of a consumer ' +
      'of this host whose process is gone (default names are HOST-PID) at once, and a consumer that starts again under the same name takes its own ' +
      'back at once. Messages come at least once: one taken just before a kill -9 comes again.',
    'mode "stream" reads the stream `key` through the consumer group `group` (created, from the start of the stream, if missing) with XREADGROUP, ' +
      'and acknowledges entries (XACK) only once they are out (as above). It first reads what the group had delivered to this consumer and was never ' +
      'acknowledged; entries left pending on any consumer for longer than claim_idle are claimed (XAUTOCLAIM) and read again, and those of a ' +
      'consumer of this host whose process is gone at once, so a kill -9 loses nothing; consumers with nothing pending and idle for claim_idle ' +
      'are removed from the group. The message is the entry\'s field "message" (what the Redis output writes); an entry without it goes to the error output. ' +
      'XACK does not delete entries: bound the stream with the Redis output\'s max_len. Give each running copy its own consumer name ' +
      '(the default, host-PID, is); a copy restarted under the same name reads its own pending entries back at once instead of after claim_idle.',
    'mode "pubsub" subscribes to `channels` and/or `patterns`. Pub/sub is lossy by design: Redis delivers only to subscribers connected at that ' +
      'moment, keeps nothing, and drops a subscriber that falls too far behind; here too, when the chain cannot keep up, messages beyond a queue of ' +
      '10,000 (or 10 × batch, if more) are dropped, with a warning. Use list or stream when losing messages matters.',
    'The input runs until stopped (SIGINT, SIGTERM), or with until_empty until a read finds nothing more. ' +
      'A lost connection is reopened with backoff, with one line on stderr when it goes and when it comes back. Each frame is handed on as bytes; ' +
      'error records name redis:KEY (or the channel) and the frame\'s number in this run.',
  ].join('\n\n'),
  examples: [
    `message-passing --input Redis --input_options '{mode: "stream", key: "events", group: "gatherers"}' --output STDOUT`,
    `message-passing --input Redis --input_options '{mode: "list", key: "queue"}' --output File --output_options '{filename: "queue.ndjson"}'`,
    `message-passing --input Redis --input_options '{mode: "pubsub", patterns: ["logs.*"]}'`,
  ],
  options: {
    url: urlOption,
    mode: {
      type: 'string',
      choices: ['list', 'pubsub', 'stream'],
      description: 'What to read: a list (reliable queue), pub/sub channels (lossy) or a stream (consumer group); without it, "list" when key is given and "pubsub" when channels or patterns are.',
    },
    key: {
      type: 'string',
      description: 'The list or stream to read (modes list and stream).',
      example: 'events',
    },
    channels: {
      type: 'strings',
      aliases: ['topics'],
      description: 'Mode pubsub: channels to subscribe to.',
      example: 'logs',
    },
    patterns: {
      type: 'strings',
      description: 'Mode pubsub: channel patterns to subscribe to (PSUBSCRIBE: * ? [abc]).',
      example: 'logs.*',
    },
    group: {
      type: 'string',
      default: 'message-passing',
      description: 'Mode stream: the consumer group; copies in one group share the entries, each group gets them all.',
    },
    consumer: {
      type: 'string',
      description: 'Modes stream and list: this consumer\'s name, unique among running copies; default HOST-PID.',
      example: 'gatherer-1',
    },
    batch: {
      type: 'integer',
      min: 1,
      default: 500,
      description: 'Most messages read (and handed to the chain) at once.',
    },
    block: {
      type: 'duration',
      min: '1ms',
      default: '1s',
      description: 'How long one read waits for new messages before looking again; a stop waits at most this long.',
    },
    until_empty: {
      type: 'boolean',
      default: false,
      description: 'Modes list and stream: end the input once a read finds nothing more (after waiting `block`), as a job that drains a queue does.',
    },
    claim_idle: {
      type: 'duration',
      min: '1ms',
      default: '60s',
      description: 'Mode stream: entries pending on another consumer for this long are claimed; mode list: how long a consumer\'s lease lasts without renewal.',
    },
  },
  check(o) {
    const problem = urlProblem(o.url);
    if (problem) return problem;
    const mode = modeOf(o);
    if (mode === undefined) return 'give key (with mode "list" or "stream"), or channels or patterns (mode "pubsub")';
    if (mode === 'pubsub') {
      if (o.channels === undefined && o.patterns === undefined) return 'mode "pubsub" needs channels or patterns (e.g. {mode: "pubsub", channels: ["logs"]})';
      if (o.key !== undefined) return 'key applies to modes list and stream; mode "pubsub" reads channels or patterns';
      if (o.consumer !== undefined) return 'consumer applies to modes list and stream';
      if (o.until_empty) return 'until_empty applies to modes list and stream (pub/sub is never empty for long)';
    } else {
      if (o.key === undefined) return `mode "${mode}" needs key (e.g. {mode: "${mode}", key: "events"})`;
      if (o.channels !== undefined || o.patterns !== undefined) return `channels and patterns apply to mode pubsub; mode "${mode}" reads key`;
    }
    if (o.consumer !== undefined && (o.consumer === '' || /\s/.test(o.consumer))) return 'consumer must be a name without spaces';
    return undefined;
  },
  async create(o, context): Promise<Input> {
    const redis = await loadRedis(LABEL);
    const mode = modeOf(o)!;
    const name = (role: string) => `message-passing-input-${role}-${process.pid}`;
    const reader = await connect(redis, { url: o.url, name: name('reader'), label: LABEL, context, announce: true });
    if (mode === 'pubsub') return new PubSubInput(reader, o.channels ?? [], o.patterns ?? [], o.batch, context);
    let control: RedisClient | undefined;
    try {
      control = await connect(redis, { url: o.url, name: name('control'), label: LABEL, context, announce: false });
      const settings: Settings = {
        url: o.url,
        key: o.key!,
        group: o.group,
        consumer: o.consumer ?? `${hostname()}-${process.pid}`,
        batch: o.batch,
        block: o.block,
        claimIdle: o.claim_idle,
        untilEmpty: o.until_empty,
      };
      const input = mode === 'stream' ? new StreamInput(redis, reader, control, settings, context) : new ListInput(redis, reader, control, settings, context);
      await input.start();
      return input;
    } catch (error) {
      reader.destroy();
      control?.destroy();
      if (error instanceof RuntimeError) throw error;
      throw new RuntimeError(`${LABEL}: ${describe(error)}`);
    }
  },
});

type Mode = 'list' | 'pubsub' | 'stream';

function modeOf(o: { mode?: Mode | undefined; key?: string | undefined; channels?: string[] | undefined; patterns?: string[] | undefined }): Mode | undefined {
  if (o.mode !== undefined) return o.mode;
  if (o.channels !== undefined || o.patterns !== undefined) return 'pubsub';
  if (o.key !== undefined) return 'list';
  return undefined;
}

interface Settings {
  url: string;
  key: string;
  group: string;
  consumer: string;
  batch: number;
  block: number;
  claimIdle: number;
  untilEmpty: boolean;
}

/** What a read that waited `block` and found nothing returns. */
const EMPTY = Symbol('empty');

type Token = string | Buffer;

/** Messages read together and acknowledged together. */
interface Taken {
  frames: Buffer[];
  /**
   * What acknowledging them takes: entry ids (stream; text, so that XACK goes
   * out as one string rather than a write per id) or the messages themselves (list).
   */
  tokens: Token[];
}

/**
 * What list and stream share: a blocking reader connection and a control
 * connection for acknowledgements and leases; reads one batch ahead while the
 * chain works on the last; acknowledgements sent in bursts and retried.
 */
abstract class AckingInput implements Input {
  protected frameNumber = 1;
  /** Batches acknowledged and not yet confirmed by Redis. */
  private acks: Token[][] = [];
  private acking: Promise<void> | undefined;
  private ackAttempt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Aborts when close() stops waiting for acknowledgements to reach Redis. */
  private readonly closing = new AbortController();
  protected readonly source: string;
  /** Reads failed in a row, for the backoff. */
  protected readAttempt = 0;

  constructor(
    protected readonly redis: RedisModule,
    protected readonly reader: RedisClient,
    protected readonly control: RedisClient,
    protected readonly settings: Settings,
    protected readonly context: InputContext,
  ) {
    this.source = `redis:${settings.key}`;
  }

  abstract start(): Promise<void>;
  /** The next messages; EMPTY when a read waited `block` and found none; undefined when there is nothing yet (a read that failed and will be tried again). */
  protected abstract read(): Promise<Taken | typeof EMPTY | undefined>;
  /** Acknowledges `tokens` with Redis; rejects when that could not be done now. */
  protected abstract sendAcks(tokens: Token[]): Promise<unknown>;
  /** Redis confirmed the acknowledgement of these batches' tokens. */
  protected abstract confirmed(batches: readonly Token[][]): void;
  /** Keeps what this consumer holds its own (the lease, or idle times of held entries). */
  protected abstract keepAlive(): Promise<unknown>;
  protected abstract finish(): Promise<unknown>;

  async run(): Promise<void> {
    const { stopping } = this.context;
    const interval = Math.max(Math.floor(this.settings.claimIdle / 3), 1);
    this.timer = setInterval(() => void this.keepAlive().catch(() => undefined), interval);
    this.timer.unref();
    let next: Promise<Taken | typeof EMPTY | undefined> | undefined = this.read();
    try {
      while (next) {
        const taken: Taken | typeof EMPTY | undefined = await next;
        // Read one batch ahead while the chain works; after a stop, what was read still goes in.
        const done: boolean = stopping.aborted || (taken === EMPTY && this.settings.untilEmpty);
        next = done ? undefined : this.read();
        if (taken && taken !== EMPTY) await this.emit(taken);
      }
    } catch (error) {
      // The chain failed: what the read ahead brings is not acknowledged, so Redis keeps it.
      next?.catch(() => undefined);
      throw error;
    }
  }

  private emit(taken: Taken): void | Promise<void> {
    const { frames, tokens } = taken;
    const first = this.frameNumber;
    this.frameNumber += frames.length;
    return this.context.emit({ frames, source: this.source, first, ack: () => this.acknowledge(tokens) });
  }

  /** Every message of a batch is out: tell Redis, in bursts (one command for what gathered meanwhile). */
  private acknowledge(tokens: Token[]): void {
    this.acks.push(tokens);
    this.acking ??= this.flushAcks();
  }

  private async flushAcks(): Promise<void> {
    // Batches acknowledged in the same turn go in one command.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.acks.length > 0) {
      const batches = this.acks;
      this.acks = [];
      try {
        await this.sendAcks(batches.flat());
        this.ackAttempt = 0;
        this.confirmed(batches);
      } catch (error) {
        this.acks.unshift(...batches);
        if (!isRetryable(this.redis, error)) {
          this.context.warn(`${LABEL}: cannot acknowledge on ${this.settings.key}: ${describe(error)}; those messages will be read again`);
          this.acks = [];
          break;
        }
        if (this.closing.signal.aborted) break;
        await pause(backoff(this.ackAttempt++), this.closing.signal);
        await whenReady(this.control, this.closing.signal);
      }
    }
    this.acking = undefined;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // Redis unreachable at the end: acknowledgements are tried a few seconds more, then left (the messages come again).
    const giveUp = setTimeout(() => this.closing.abort(), CLOSE_ACK_WAIT_MS);
    while (this.acking) await this.acking;
    clearTimeout(giveUp);
    if (this.acks.length > 0) {
      this.context.warn(`${LABEL}: ${plural(this.acks.flat().length, 'message')} went out but Redis could not be told (${safeUrl(this.settings.url)} unreachable); they will be read again`);
    } else {
      await this.finish().catch(() => undefined);
    }
    await Promise.all([this.reader, this.control].map((client) => client.close().catch(() => client.destroy())));
  }

  /** After a read failed: wait, then for the connection, before the next read. */
  protected async recover(error: unknown): Promise<void> {
    if (!isRetryable(this.redis, error)) throw new RuntimeError(`${LABEL}: reading ${this.settings.key} from ${safeUrl(this.settings.url)}: ${describe(error)}`);
    await pause(backoff(this.readAttempt++), this.context.stopping);
    await whenReady(this.reader, this.context.stopping);
  }
}

class StreamInput extends AckingInput {
  /** Entries handed to the chain and not yet acknowledged: id → when they were taken. */
  private readonly held = new Map<string, number>();
  /** Reading what the group delivered to this consumer before (at start, after a lost connection), from this id on. */
  private history: string | undefined = '0';
  private claimCursor = '0-0';
  private lastClaim = -Infinity;

  async start(): Promise<void> {
    const { key, group } = this.settings;
    try {
      await this.control.sendCommand(['XGROUP', 'CREATE', key, group, '0', 'MKSTREAM']);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw this.setupError(error);
    }
    await this.tidyConsumers(true);
  }

  /**
   * Entries pending on a consumer of this host whose process is gone are taken
   * over at once (read with this consumer's own history); with `atStart`
   * false, consumers with nothing pending and idle longer than claim_idle are
   * removed, so that names with a PID in them do not pile up in the group.
   */
  private async tidyConsumers(atStart: boolean): Promise<void> {
    const { key, group, consumer, batch, claimIdle } = this.settings;
    const reply = (await this.control.sendCommand(['XINFO', 'CONSUMERS', key, group])) as Array<Array<string | number>>;
    for (const fields of reply) {
      const info = new Map<string, string | number>();
      for (let i = 0; i + 1 < fields.length; i += 2) info.set(String(fields[i]), fields[i + 1]!);
      const name = String(info.get('name'));
      if (name === consumer) continue;
      let pending = Number(info.get('pending'));
      const gone = deadHere(name);
      if (gone && pending > 0) {
        let taken = 0;
        while (pending > 0) {
          const ids = ((await this.control.sendCommand(['XPENDING', key, group, '-', '+', String(batch), name])) as Array<[string]>).map(([id]) => id);
          if (ids.length === 0) break;
          await this.control.sendCommand(['XCLAIM', key, group, consumer, '0', ...ids, 'JUSTID']);
          taken += ids.length;
          pending -= ids.length;
        }
        this.history = '0';
        this.context.warn(`${LABEL}: took over ${plural(taken, 'entry', 'entries')} of ${key} pending on consumer ${name} (its process is gone)`);
        pending = 0;
      }
      if (pending === 0 && (gone || (!atStart && Number(info.get('idle')) > claimIdle))) {
        await this.control.sendCommand(['XGROUP', 'DELCONSUMER', key, group, name]);
      }
    }
  }

  private setupError(error: unknown): RuntimeError {
    const text = describe(error);
    if (text.startsWith('WRONGTYPE')) return new RuntimeError(`${LABEL}: key ${this.settings.key} is not a stream (choose another key, or mode "list" for a list)`);
    return new RuntimeError(`${LABEL}: cannot read stream ${this.settings.key}: ${text}`);
  }

  protected async read(): Promise<Taken | typeof EMPTY | undefined> {
    const { key, group, consumer, batch, block, claimIdle } = this.settings;
    const raw = this.reader.withTypeMapping({ [this.redis.RESP_TYPES.BLOB_STRING]: Buffer });
    try {
      let entries: Entry[];
      if (this.history !== undefined) {
        const reply = (await raw.sendCommand(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(batch), 'STREAMS', key, this.history])) as StreamsReply;
        entries = reply?.[0]?.[1] ?? [];
        this.history = entries.length === 0 ? undefined : entries[entries.length - 1]![0].toString();
      } else if (Date.now() - this.lastClaim >= claimIdle / 2) {
        const reply = (await raw.sendCommand(['XAUTOCLAIM', key, group, consumer, String(claimIdle), this.claimCursor, 'COUNT', String(batch)])) as [Buffer, Entry[], Buffer[]?];
        this.claimCursor = reply[0].toString();
        if (this.claimCursor === '0-0') {
          this.lastClaim = Date.now();
          await this.tidyConsumers(false);
        }
        entries = reply[1];
        if (entries.length > 0) this.context.warn(`${LABEL}: claimed ${plural(entries.length, 'entry', 'entries')} of ${key} left pending longer than claim_idle (${formatDuration(claimIdle)})`);
      } else {
        const reply = (await raw.sendCommand(['XREADGROUP', 'GROUP', group, consumer, 'COUNT', String(batch), 'BLOCK', String(block), 'STREAMS', key, '>'])) as StreamsReply;
        entries = reply?.[0]?.[1] ?? [];
        if (entries.length === 0) return EMPTY;
      }
      this.readAttempt = 0;
      return this.take(entries);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('NOGROUP')) {
        // The stream or its group was deleted while running: start over on the new one.
        this.context.warn(`${LABEL}: the group ${group} of ${key} is gone (stream deleted?); creating it again`);
        await this.start().catch(() => undefined);
        return undefined;
      }
      await this.recover(error);
      // A reply lost with the connection may have delivered entries to this consumer: read them again.
      this.history = '0';
      return undefined;
    }
  }

  private take(entries: Entry[]): Taken | undefined {
    if (entries.length === 0) return undefined;
    const frames: Buffer[] = [];
    const tokens: string[] = [];
    const now = Date.now();
    for (const [idBytes, fields] of entries) {
      const id = idBytes.toString();
      // Already in the chain (claimed back from this consumer itself, or read again after a reconnection).
      if (this.held.has(id)) continue;
      this.held.set(id, now);
      tokens.push(id);
      if (fields === null) continue; // deleted (XDEL) while pending: nothing to read, only to acknowledge
      const frame = fieldOf(fields, ENTRY_FIELD_BYTES);
      if (frame === undefined) {
        const names = [];
        for (let i = 0; i < fields.length; i += 2) names.push(fields[i]!.toString());
        this.context.reportError({
          error: 'input',
          reason: `${LABEL}: stream entry ${id} has no field "${ENTRY_FIELD}" (its fields: ${names.join(', ')})`,
          source: `${this.source}:${id}`,
        });
        continue;
      }
      frames.push(frame);
    }
    if (tokens.length === 0) return undefined;
    return { frames, tokens };
  }

  protected confirmed(batches: readonly Token[][]): void {
    for (const tokens of batches) for (const token of tokens) this.held.delete(token as string);
  }

  protected sendAcks(tokens: Token[]): Promise<unknown> {
    const { key, group } = this.settings;
    return this.control.sendCommand(['XACK', key, group, ...tokens]);
  }

  /** Entries held a while are claimed again by this consumer (idle time reset), so that no other consumer takes them as abandoned. */
  protected keepAlive(): Promise<unknown> {
    const { key, group, consumer, claimIdle } = this.settings;
    const since = Date.now() - claimIdle / 3;
    const old: string[] = [];
    for (const [id, at] of this.held) if (at <= since) old.push(id);
    const claims: Array<Promise<unknown>> = [];
    // A filter may hold many (Dedupe keeps up to max_keys): a few thousand ids per command.
    for (let from = 0; from < old.length; from += 2000) {
      claims.push(this.control.sendCommand(['XCLAIM', key, group, consumer, '0', ...old.slice(from, from + 2000), 'JUSTID']));
    }
    return Promise.all(claims);
  }

  /** A consumer with nothing pending leaves the group at the end (with something pending it stays, so that it can be claimed). */
  protected async finish(): Promise<unknown> {
    const { key, group, consumer } = this.settings;
    const pending = (await this.control.sendCommand(['XPENDING', key, group, '-', '+', '1', consumer])) as unknown[];
    if (pending.length > 0) return;
    return this.control.sendCommand(['XGROUP', 'DELCONSUMER', key, group, consumer]);
  }
}

type Entry = [Buffer, Buffer[] | null];
type StreamsReply = Array<[Buffer, Entry[]]> | null;

function fieldOf(fields: Buffer[], name: Buffer): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.equals(name)) return fields[i + 1];
  return undefined;
}

class ListInput extends AckingInput {
  private readonly processing = `${this.settings.key}:processing:${this.settings.consumer}`;
  private readonly alive = `${this.settings.key}:alive:${this.settings.consumer}`;
  private readonly consumers = `${this.settings.key}:consumers`;
  /** Messages handed to the chain or being acknowledged: what the processing list holds for a reason. */
  private readonly held = new Set<Buffer[]>();
  /** Look through the processing list for messages taken but never handed on (at start, after a lost reply). */
  private resync = true;
  private lastReclaim = -Infinity;

  async start(): Promise<void> {
    const { key, consumer, claimIdle } = this.settings;
    const type = String(await this.control.sendCommand(['TYPE', key]));
    if (type !== 'none' && type !== 'list') {
      throw new RuntimeError(`${LABEL}: key ${key} holds a ${type}, not a list (choose another key${type === 'stream' ? ', or mode "stream"' : ''})`);
    }
    await this.control.sendCommand(['SET', this.alive, '1', 'PX', String(claimIdle)]);
    await this.control.sendCommand(['SADD', this.consumers, consumer]);
    await Promise.all([TAKE, ACK, RECLAIM, FINISH].map((script) => script.load(this.control)));
  }

  protected async read(): Promise<Taken | typeof EMPTY | undefined> {
    const { key, batch, block, claimIdle } = this.settings;
    const raw = this.reader.withTypeMapping({ [this.redis.RESP_TYPES.BLOB_STRING]: Buffer });
    try {
      if (this.resync) {
        const left = (await raw.sendCommand(['LRANGE', this.processing, '0', '-1'])) as Buffer[];
        this.resync = false;
        const taken = this.notHeld(left);
        if (taken.length > 0) return this.hold(taken);
      }
      if (Date.now() - this.lastReclaim >= claimIdle / 2) {
        this.lastReclaim = Date.now();
        await this.reclaim();
      }
      let taken = (await this.runScript(raw, TAKE, [key, this.processing], [String(batch)])) as Buffer[];
      if (taken.length === 0) {
        const one = (await raw.sendCommand(['BLMOVE', key, this.processing, 'LEFT', 'RIGHT', String(block / 1000)])) as Buffer | null;
        if (one === null) return EMPTY;
        taken = [one];
      }
      this.readAttempt = 0;
      return this.hold(taken);
    } catch (error) {
      await this.recover(error);
      // A reply lost with the connection may have moved messages into the processing list.
      this.resync = true;
      return undefined;
    }
  }

  private hold(messages: Buffer[]): Taken {
    this.held.add(messages);
    return { frames: messages, tokens: messages };
  }

  /** The messages of `list` that no batch in the chain accounts for (each held message accounts for one equal message). */
  private notHeld(list: Buffer[]): Buffer[] {
    const counts = new Map<string, number>();
    for (const messages of this.held) for (const message of messages) {
      const text = message.toString('latin1');
      counts.set(text, (counts.get(text) ?? 0) + 1);
    }
    return list.filter((message) => {
      const text = message.toString('latin1');
      const count = counts.get(text) ?? 0;
      if (count === 0) return true;
      counts.set(text, count - 1);
      return false;
    });
  }

  /** Processing lists of consumers whose lease ran out go back to the head of the queue. */
  private async reclaim(): Promise<void> {
    const { key, consumer } = this.settings;
    const members = ((await this.control.sendCommand(['SMEMBERS', this.consumers])) as string[]).filter((name) => name !== consumer);
    for (const other of members) {
      const moved = Number(
        await this.runScript(this.control, RECLAIM, [`${key}:processing:${other}`, key, this.consumers, `${key}:alive:${other}`], [
          other,
          deadHere(other) ? 'gone' : 'lease',
        ]),
      );
      if (moved > 0) this.context.warn(`${LABEL}: took back ${plural(moved, 'message')} of ${key} left by consumer ${other}`);
    }
  }

  private async runScript(client: { sendCommand(args: Array<string | Buffer>): Promise<unknown> }, script: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    try {
      return await client.sendCommand(script.command(keys, args));
    } catch (error) {
      if (!isNoScript(error)) throw error;
      script.forget();
      return client.sendCommand(script.command(keys, args));
    }
  }

  protected sendAcks(tokens: Token[]): Promise<unknown> {
    return this.runScript(this.control, ACK, [this.processing], tokens);
  }

  protected confirmed(batches: readonly Token[][]): void {
    for (const messages of batches) this.held.delete(messages as Buffer[]);
  }

  protected keepAlive(): Promise<unknown> {
    return this.control.sendCommand(['SET', this.alive, '1', 'PX', String(this.settings.claimIdle)]);
  }

  protected finish(): Promise<unknown> {
    return this.runScript(this.control, FINISH, [this.processing, this.alive, this.consumers], [this.settings.consumer]);
  }
}

/** This host's consumers are named HOST-PID by default: one whose process is gone holds nothing any more. */
const LOCAL_CONSUMER = new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`);

function deadHere(name: string): boolean {
  const pid = Number(LOCAL_CONSUMER.exec(name)?.[1]);
  if (!pid || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return errorCode(error) === 'ESRCH';
  }
}

class PubSubInput implements Input {
  private queue: Buffer[] = [];
  private wake: (() => void) | undefined;
  private dropped = 0;
  private lastWarning = 0;
  private frameNumber = 1;
  private readonly limit: number;
  private readonly source: string;

  constructor(
    private readonly subscriber: RedisClient,
    private readonly channels: string[],
    private readonly patterns: string[],
    private readonly batch: number,
    private readonly context: InputContext,
  ) {
    this.limit = Math.max(PUBSUB_QUEUE_MIN, 10 * batch);
    this.source = `redis:${[...channels, ...patterns].join(',')}`;
  }

  private readonly received = (message: Buffer): void => {
    if (this.queue.length >= this.limit) {
      this.dropped++;
      return;
    }
    this.queue.push(message);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };

  async run(): Promise<void> {
    const { stopping } = this.context;
    if (this.channels.length > 0) await this.subscriber.subscribe(this.channels, this.received, true);
    if (this.patterns.length > 0) await this.subscriber.pSubscribe(this.patterns, this.received, true);
    const stop = () => {
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    };
    stopping.addEventListener('abort', stop, { once: true });
    try {
      while (!stopping.aborted) {
        if (this.queue.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
        await this.emitQueued();
      }
      if (this.channels.length > 0) await this.subscriber.unsubscribe(this.channels).catch(() => undefined);
      if (this.patterns.length > 0) await this.subscriber.pUnsubscribe(this.patterns).catch(() => undefined);
      await this.emitQueued();
    } finally {
      stopping.removeEventListener('abort', stop);
      this.warnDropped(true);
    }
  }

  private async emitQueued(): Promise<void> {
    while (this.queue.length > 0) {
      const frames = this.queue.splice(0, this.batch);
      const first = this.frameNumber;
      this.frameNumber += frames.length;
      await this.context.emit({ frames, source: this.source, first });
      this.warnDropped(false);
    }
  }

  private warnDropped(atEnd: boolean): void {
    if (this.dropped === 0 || (!atEnd && Date.now() - this.lastWarning < 10_000)) return;
    this.lastWarning = Date.now();
    this.context.warn(
      `${LABEL}: dropped ${plural(this.dropped, 'message')} of ${this.source}: the chain could not keep up and pub/sub cannot wait (use mode "list" or "stream" to lose nothing)`,
    );
    this.dropped = 0;
  }

  async close(): Promise<void> {
    await this.subscriber.close().catch(() => this.subscriber.destroy());
  }
}
