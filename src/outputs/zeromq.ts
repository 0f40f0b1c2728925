import { RuntimeError, UsageError, describe, fatal, frameCopy, plural } from '../core/errors.js';
import { validateOptions, type OptionsOf } from '../core/options.js';
import { defineOutput, type Message, type Output, type OutputContext } from '../core/plugin.js';
import { fieldValue } from '../core/time.js';
import { partitionOf } from '../io/partition.js';
import { attach, checkEndpoints, endpointList, endpointOptions, loadZeroMQ, type ZeroMQ } from '../io/zeromq.js';

const LABEL = 'zeromq output';

/**
 * A write kept waiting this long says on stderr what it waits for (once); with
 * linger -1, once the program is told to stop, a backlog from which nothing
 * went out for this long is given up and counted.
 */
const WAIT_NOTICE_MS = 3000;

/**
 * Messages write() takes ahead of a socket before it makes the chain wait.
 * Small, so memory stays bounded, but above one batch so that the last batch
 * before end of input is accepted and close() can count what is left.
 */
const BACKLOG_LIMIT = 2048;

/** How often a PUB looks for subscriptions while it waits for its first subscribers. */
const SUBSCRIPTION_POLL_MS = 3;

/** libzmq ends a socket that ran out of linger at the deadline; ending this close to it means it probably did. */
const LINGER_TOLERANCE_MS = 20;

/**
 * A no_drop PUB at its high-water mark fails the send (EAGAIN) and never says
 * when a subscriber has made room (libzmq reports an XPUB always writable), so
 * it tries again: at the next turns of the event loop first (a subscriber that
 * keeps up makes room within microseconds), then every millisecond, which
 * costs no CPU while a subscriber is stuck and, with the default socket_hwm,
 * no throughput (a subscriber frees half its queue before the PUB may send again).
 */
const NO_DROP_QUICK_RETRIES = 16;
const NO_DROP_RETRY_MS = 1;

/** Keys placed by partition_by remembered at once: a key seen again skips the hash. */
const PLACEMENT_CACHE = 4096;

const LF = 10;
const EMPTY = Buffer.alloc(0);

/** Where batches are written, one after another, before they are sent. */
const SLAB_SIZE = 64 << 10;

/** One message's bytes: text from the encoder, or raw bytes that are not UTF-8. */
type Frame = string | Buffer;

type PushSocket = InstanceType<ZeroMQ['Push']>;
type PubSocket = InstanceType<ZeroMQ['XPublisher']>;
type Socket = PushSocket | PubSocket;

const batchSchema = {
  max_messages: { type: 'integer', min: 1, default: 256, description: 'Most messages in one frame.' },
  max_bytes: { type: 'size', min: 1, default: '256KiB', description: 'Largest frame; a message larger than this alone goes in a frame of its own.' },
  max_delay: { type: 'duration', default: '5ms', description: 'Longest a message waits for a frame to fill.' },
} as const;

type BatchSettings = OptionsOf<typeof batchSchema>;

/** The batch option as settings (true: the defaults), or nothing when off; throws UsageError when malformed. */
function batchSettings(value: unknown): BatchSettings | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return validateOptions('batch', batchSchema, {});
  return validateOptions('batch', batchSchema, value);
}

export default defineOutput({
  summary: 'Send each message as one ZeroMQ message on a PUB or PUSH socket.',
  description: [
    'PUB (the default) fans every message out to all connected subscribers; a subscriber that falls more than socket_hwm messages behind loses messages, by design. ' +
      'Before its first message a PUB waits, up to subscribe_delay seconds, until its peers have subscribed (one per connect endpoint, or the first one when it binds), ' +
      'so that a one-liner such as `echo \'{"a":1}\' | message-passing --output ZeroMQ ...` does not lose its message to the "slow joiner" race. ' +
      'With no_drop: true a PUB loses nothing instead: at a subscriber\'s high-water mark the chain waits for the slowest connected subscriber (ZMQ_XPUB_NODROP), ' +
      'so the whole fan-out goes at the pace of the slowest, and one subscriber that stops reading stops it; messages published while nobody is subscribed still go to nobody, ' +
      'and at the publisher\'s exit ZeroMQ may drop the last messages queued for a subscriber that has not caught up, whatever linger is (stop the stream from its source once the subscribers caught up).',
    'PUSH hands each message to one peer, round robin, and never drops: with no peer connected, or every peer socket_hwm messages behind, the chain waits, ' +
      'so the input slows down instead of memory growing. A PUSH queues messages only for peers that are connected (ZMQ_IMMEDIATE), never for one that is absent.',
    'partition_by (PUSH only) sends all messages with the same key to the same endpoint, in order: one PUSH socket per endpoint of connect or socket_bind, ' +
      'the endpoint chosen by jump consistent hash (Lamping and Veach) of the 64-bit FNV-1a hash of the key\'s UTF-8 text ' +
      '(the field\'s value: a string as it is, anything else as JSON; several fields joined by NUL characters), over the list in the order given. ' +
      'Placement depends only on the key and the number of endpoints, so every producer given the same list agrees, and adding an endpoint at the end moves about 1/N of the keys (all to the new one). ' +
      'An endpoint without a peer is not skipped: its messages wait, and once 2048 of them wait (after socket_hwm more queued by ZeroMQ when the peer is connected but does not read) the chain waits, so a dead worker stops the stream until it is back. ' +
      'A message without the key goes to the error output, or with partition_missing "first" to the first endpoint. --stats shows the messages sent to each endpoint.',
    'batch sends several messages in one ZeroMQ frame, each ended by LF (a frame is sent when it holds max_messages messages or max_bytes bytes, or max_delay after its first message, and at once at the end or on SIGTERM). ' +
      'It cuts the per-message cost of ZeroMQ several times over; a ZeroMQ input splits such frames back into messages by itself with the JSON decoder (split_lines). ' +
      'A message that holds a LF itself cannot go in a batch and goes to the error output. Off by default: Perl and other ZeroMQ peers expect one message per frame. ' +
      'socket_hwm still counts messages: the socket queues socket_hwm / max_messages frames.',
    'At the end, the output waits up to `linger` milliseconds for its messages to go out, and does not exit before ZeroMQ has handed them to the network. ' +
      'A PUSH that cannot deliver within linger prints the number of messages left behind on stderr (per endpoint with partition_by) and exits with status 1 (with no peer at all, the count is exact). ' +
      'What ZeroMQ cannot tell: how many messages it still held for a connected but slow peer when linger ran out (the program then says that some were dropped, ' +
      'without a count), nor how many it had queued for a peer that disconnected during the run (those are lost without notice, as with any ZeroMQ PUSH).',
  ].join('\n\n'),
  examples: [
    'echo \'{"a":1}\' | message-passing --output ZeroMQ --output_options \'{connect: "tcp://127.0.0.1:5552"}\'',
    'message-passing --input ZeroMQ --input_options \'{socket_bind: "tcp://*:5552"}\' --output ZeroMQ --output_options \'{socket_bind: "tcp://*:5553", socket_type: "PUSH"}\'',
    'message-passing --output ZeroMQ --output_options \'{socket_bind: "tcp://*:5554", topic: "logs", no_drop: true}\'',
    'message-passing --input File --input_options \'{filename: "logs/*.log", follow: true, origin: "origin"}\' --output ZeroMQ --output_options \'{connect: ["tcp://worker-1:5555", "tcp://worker-2:5555"], socket_type: "PUSH", partition_by: "origin.file"}\'',
    'message-passing --output ZeroMQ --output_options \'{connect: "tcp://127.0.0.1:5555", socket_type: "PUSH", batch: {max_messages: 256, max_delay: "5ms"}}\'',
  ],
  options: {
    ...endpointOptions,
    socket_type: {
      type: 'string',
      choices: ['PUB', 'PUSH'],
      default: 'PUB',
      description: 'PUB sends every message to every subscriber (lossy past socket_hwm unless no_drop); PUSH sends each message to one peer and waits rather than drop.',
    },
    linger: {
      type: 'integer',
      min: -1,
      default: 2000,
      description:
        'Milliseconds allowed at the end for queued messages to go out; -1 waits as long as it takes, until SIGINT or SIGTERM, after which it gives up once none went out for 3 s. ' +
        'Perl\'s default is 0 (drop at exit); 2000 delivers what a live peer can take.',
    },
    topic: {
      type: 'string',
      description: 'PUB only: send each message as two parts [topic, frame], so subscribers can filter on the topic (a ZeroMQ input uses the last part).',
    },
    subscribe_delay: {
      type: 'number',
      min: 0,
      default: 1,
      description: 'PUB only: longest wait, in seconds, for subscribers before the first message; the wait ends as soon as they have subscribed.',
    },
    no_drop: {
      type: 'boolean',
      default: false,
      description: 'PUB only: wait for the slowest connected subscriber instead of dropping its messages past socket_hwm (backpressure to the input).',
    },
    partition_by: {
      type: 'strings',
      description:
        'PUSH only: a field (dotted path) or a list of them whose values choose the endpoint: one socket per endpoint, the same key always to the same endpoint, in order (jump consistent hash).',
      example: '"origin.file"',
    },
    partition_missing: {
      type: 'string',
      choices: ['error', 'first'],
      default: 'error',
      description: 'With partition_by, where a message without the key goes: "error" (the error output) or "first" (the first endpoint).',
    },
    batch: {
      type: 'any',
      description:
        'Several messages per ZeroMQ frame, each ended by LF: true, or {max_messages: 256, max_bytes: "256KiB", max_delay: "5ms"} (those are the defaults). A ZeroMQ input splits them by itself with the JSON decoder, with Null when given split_lines.',
      example: '{max_messages: 256, max_delay: "5ms"}',
    },
  },
  check(options) {
    const problem = checkEndpoints(options);
    if (problem) return problem;
    const push = options.socket_type === 'PUSH';
    if (push && options.topic !== undefined) {
      return 'topic applies to PUB sockets only (a PUSH peer has no subscription to match it); drop topic or use socket_type "PUB"';
    }
    if (push && options.no_drop) return 'no_drop applies to PUB sockets only (a PUSH never drops: it waits for a peer)';
    if (options.partition_by !== undefined && !push) {
      return 'partition_by needs socket_type "PUSH" (a PUB sends every message to every subscriber)';
    }
    if (options.partition_by?.some((field) => field === '')) return 'partition_by names a field with an empty name';
    try {
      batchSettings(options.batch);
    } catch (error) {
      if (error instanceof UsageError) return error.message.replace(/^batch: options must be an object/, 'batch must be true, false or an object');
      throw error;
    }
    return undefined;
  },
  async create(options, context) {
    const zmq = await loadZeroMQ().catch((error: unknown) => {
      throw fatal(LABEL, error);
    });
    const batch = batchSettings(options.batch);
    const push = options.socket_type === 'PUSH';
    // With batches the socket queues frames: socket_hwm stays a number of messages.
    const hwm = batch && options.socket_hwm > 0 ? Math.max(1, Math.ceil(options.socket_hwm / batch.max_messages)) : options.socket_hwm;
    const open = (): Socket => {
      if (push) {
        // linger is set for real by close(); until then an abrupt exit must not hang on queued messages.
        return new zmq.Push({ sendHighWaterMark: hwm, immediate: true, linger: 0 });
      }
      // An XPUB is a PUB that also shows the subscriptions arriving: that is how the first send waits for its subscribers.
      const socket = new zmq.XPublisher({ sendHighWaterMark: hwm, linger: 0, noDrop: options.no_drop });
      socket.verbosity = 'allSubs';
      return socket;
    };
    const laneSettings = (endpoints: string, subscribersWanted: number): LaneSettings => ({
      endpoints,
      push,
      noDrop: options.no_drop,
      topic: options.topic,
      batch,
      subscribersWanted,
      subscribeDelayMs: options.subscribe_delay * 1000,
    });
    const output = new ZeroMQOutput(
      { batch, linger: options.linger, partitionBy: options.partition_by, missingToFirst: options.partition_missing === 'first', backlogLimit: Math.max(BACKLOG_LIMIT, 2 * (batch?.max_messages ?? 0)) },
      context,
    );
    try {
      if (options.partition_by) {
        // One socket per endpoint: ZeroMQ would deal messages to its peers round robin.
        const bind = options.socket_bind !== undefined;
        for (const endpoint of options.connect ?? options.socket_bind ?? []) {
          const socket = open();
          const lane = output.addLane(socket, laneSettings(endpoint, 1));
          await attach(socket, bind ? { socket_bind: [endpoint] } : { connect: [endpoint] });
          lane.start();
        }
      } else {
        const socket = open();
        const lane = output.addLane(socket, laneSettings(endpointList(options), options.connect ? options.connect.length : 1));
        await attach(socket, options);
        lane.start();
      }
    } catch (error) {
      output.abandon();
      throw fatal(LABEL, error);
    }
    return output;
  },
});

interface OutputSettings {
  batch: BatchSettings | undefined;
  linger: number;
  partitionBy: readonly string[] | undefined;
  missingToFirst: boolean;
  backlogLimit: number;
}

interface LaneSettings {
  /** The endpoint, or the endpoints of one socket, for messages and --stats. */
  endpoints: string;
  push: boolean;
  noDrop: boolean;
  topic: string | undefined;
  batch: BatchSettings | undefined;
  subscribersWanted: number;
  subscribeDelayMs: number;
}

/** What a lane tells its output: progress (room, idle), a failure, a message it refuses. */
interface LaneOwner {
  changed(): void;
  failed(error: Error): void;
  readonly context: OutputContext;
}

/** How one socket ended: what close() reports. */
interface LaneEnd {
  endpoints: string;
  undelivered: number;
  peers: number;
  lingerRanOut: boolean;
}

class ZeroMQOutput implements Output {
  readonly passThrough: 'lines' | 'frames' | undefined;
  private readonly lanes: Lane[] = [];
  private roomWaiter: (() => void) | undefined;
  private settledWaiters: Array<() => void> = [];
  private failure: Error | undefined;
  private closed = false;
  /** Once the chain must stop, write() no longer waits for room: close() counts what is left. */
  private stopped = false;
  private unwatchStop: (() => void) | undefined;
  private readonly placements = new Map<string, number>();
  /** Says once what a long wait waits for (see sayWhatWaits). */
  private noticeWait: NodeJS.Timeout | undefined;
  private waitNoticed = false;

  constructor(
    private readonly settings: OutputSettings,
    private readonly context: OutputContext,
  ) {
    // Unencoded frames may come straight from the input: each one ZeroMQ message, or with batch lines, as they
    // come, cut into batches with no string made; partition_by must read the messages.
    this.passThrough = settings.partitionBy ? undefined : settings.batch ? 'lines' : 'frames';
  }

  addLane(socket: Socket, settings: LaneSettings): Lane {
    const owner: LaneOwner = { changed: this.changed, failed: this.laneFailed, context: this.context };
    const lane = settings.batch || settings.noDrop ? new OrderedLane(socket, settings, owner) : new EagerLane(socket, settings, owner);
    this.lanes.push(lane);
    if (settings.batch && this.lanes.length === 1) {
      // A stop sends a partial batch at once rather than after max_delay.
      this.context.stopping.addEventListener('abort', () => this.lanes.forEach((l) => l.flushOpen()), { once: true });
    }
    return lane;
  }

  /** Closes every socket opened so far, when setting up the next one failed. */
  abandon(): void {
    for (const lane of this.lanes) lane.abandon();
  }

  /** Messages sent to each endpoint, with partition_by, for --stats. */
  stats(): string | undefined {
    if (this.lanes.length < 2 && !this.settings.partitionBy) return undefined;
    let text = `endpoints=${this.lanes.map((lane) => `${lane.endpoints}=${lane.sent}`).join(',')}`;
    const waiting = this.lanes.filter((lane) => lane.waiting > 0);
    if (waiting.length > 0) text += ` waiting=${waiting.map((lane) => `${lane.endpoints}=${lane.waiting}`).join(',')}`;
    return text;
  }

  /** Messages accepted and not yet handed to ZeroMQ; after close(), those left behind. */
  queued(): number {
    let count = 0;
    for (const lane of this.lanes) count += lane.unsent;
    return count;
  }

  /** Resolves once every message written so far has been handed to ZeroMQ (a partial batch is sent now). */
  settled(): void | Promise<void> {
    for (const lane of this.lanes) lane.flushOpen();
    if (this.allIdle()) return;
    return new Promise<void>((resolve) => this.settledWaiters.push(resolve));
  }

  write(frames: readonly Frame[], messages: readonly Message[]): void | Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new RuntimeError(`${LABEL}: write after close`);
    if (this.settings.partitionBy) this.route(frames, messages, this.settings.partitionBy);
    else this.lanes[0]!.accept(frames);
    return this.waitForRoom();
  }

  /** Nothing while every lane has room; else a promise that resolves once they have (or the program stops). */
  private waitForRoom(): void | Promise<void> {
    if (this.stopped || this.hasRoom()) return;
    // Watched from the first wait on, when the program's own signal handlers are in place.
    this.unwatchStop ??= watchStop(this.context, () => {
      this.stopped = true;
      this.changed();
    });
    if (!this.waitNoticed && !this.noticeWait) {
      this.noticeWait = setTimeout(() => this.sayWhatWaits(), WAIT_NOTICE_MS);
      this.noticeWait.unref();
    }
    return new Promise<void>((resolve) => {
      this.roomWaiter = resolve;
    }).then(() => {
      if (this.failure) throw this.failure;
    });
  }

  /** Once: what a write still waiting after WAIT_NOTICE_MS waits for, so that a stuck PUSH is not silent. */
  private sayWhatWaits(): void {
    if (!this.roomWaiter || this.waitNoticed || this.closed) return;
    this.waitNoticed = true;
    const stuck = this.lanes.filter((lane) => lane.waiting > 0);
    const what = stuck
      .map((lane) => `${lane.peers === 0 ? 'a peer' : 'its peer to take more'} on ${lane.endpoints} (${lane.waiting} queued)`)
      .join(', ');
    this.context.warn(`${LABEL}: waiting for ${what || 'room'}; start the receiving side, or stop with SIGTERM (what cannot be sent is counted)`);
  }

  /** With batch: `count` LF-terminated lines that pass through as bytes (no filter, no partition_by). */
  writeLines(bytes: Buffer, count: number): void | Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new RuntimeError(`${LABEL}: write after close`);
    (this.lanes[0] as OrderedLane).acceptLines(bytes, count);
    return this.waitForRoom();
  }

  /** Hands each message to the lane of its key's endpoint; each lane keeps the order it was given. */
  private route(frames: readonly Frame[], messages: readonly Message[], fields: readonly string[]): void {
    const count = this.lanes.length;
    const perLane: Frame[][] = this.lanes.map(() => []);
    for (let i = 0; i < frames.length; i++) {
      const key = keyOf(messages[i], fields);
      let lane: number;
      if (typeof key === 'string') {
        let placed = this.placements.get(key);
        if (placed === undefined) {
          placed = partitionOf(key, count);
          if (this.placements.size >= PLACEMENT_CACHE) this.placements.clear();
          this.placements.set(key, placed);
        }
        lane = placed;
      } else if (this.settings.missingToFirst) {
        lane = 0;
      } else {
        this.context.reportError({
          error: 'output',
          reason: `field '${key.missing}' missing for partition_by`,
          source: 'output:zeromq',
          ...frameCopy(frames[i]!),
        });
        continue;
      }
      perLane[lane]!.push(frames[i]!);
    }
    for (let lane = 0; lane < count; lane++) if (perLane[lane]!.length > 0) this.lanes[lane]!.accept(perLane[lane]!);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.unwatchStop?.();
    const { linger } = this.settings;
    const ends = await Promise.all(this.lanes.map((lane) => lane.close(linger)));
    this.closed = true;
    this.changed();
    if (this.failure) throw this.failure;
    const kind = this.lanes[0]?.push ? 'PUSH' : 'PUB';
    const left = ends.filter((end) => end.undelivered > 0);
    const ranOut = ends.filter((end) => end.lingerRanOut && this.lanes[0]?.waitsForPeers);
    // linger -1 gives up only once the program is told to stop: raising it would not help.
    const unbounded = linger < 0;
    const within = unbounded ? `after the stop signal (none went out for ${WAIT_NOTICE_MS / 1000} s)` : `within linger (${linger} ms)`;
    const orRaise = unbounded ? '' : ', or raise linger';
    if (left.length > 0 && ends.length === 1) {
      const [end] = left as [LaneEnd];
      const why =
        end.peers === 0
          ? `no peer is connected to the ${kind} socket (${end.endpoints}); start the receiving side first${orRaise}`
          : `the peers of the ${kind} socket (${end.endpoints}) did not take them in time${unbounded ? '' : '; raise linger'}`;
      throw new RuntimeError(`${LABEL}: ${plural(end.undelivered, 'message')} could not be delivered ${within}: ${why}`);
    }
    if (left.length > 0) {
      const total = left.reduce((sum, end) => sum + end.undelivered, 0);
      const each = left.map((end) => `${end.undelivered} for ${end.endpoints} (${end.peers === 0 ? 'no peer connected' : 'its peer did not take them in time'})`);
      const dropped = ranOut.length > 0 ? `; ZeroMQ also dropped messages it still held for ${ranOut.map((end) => end.endpoints).join(', ')} without a count` : '';
      throw new RuntimeError(`${LABEL}: ${plural(total, 'message')} could not be delivered ${within}: ${each.join(', ')}${dropped}; start the missing receivers${orRaise}`);
    }
    if (ranOut.length > 0) {
      const when = unbounded ? 'the stop signal came' : `linger (${linger} ms) ran out`;
      throw new RuntimeError(
        `${LABEL}: ${when} while ZeroMQ still held messages for a slow peer of the ${kind} socket (${ranOut.map((end) => end.endpoints).join(', ')}); ` +
          `ZeroMQ dropped them without saying how many${unbounded ? '' : '; raise linger'}`,
      );
    }
  }

  private hasRoom(): boolean {
    const limit = this.settings.backlogLimit;
    for (const lane of this.lanes) if (lane.waiting > limit) return false;
    return true;
  }

  private allIdle(): boolean {
    for (const lane of this.lanes) if (!lane.idle) return false;
    return true;
  }

  /** A lane made progress (or stopped): wake a write waiting for room and settled() calls waiting for idle. */
  private readonly changed = (): void => {
    const finished = this.closed || this.failure !== undefined;
    if (this.roomWaiter && (finished || this.stopped || this.hasRoom())) {
      const wake = this.roomWaiter;
      this.roomWaiter = undefined;
      clearTimeout(this.noticeWait);
      this.noticeWait = undefined;
      wake();
    }
    if (this.settledWaiters.length > 0 && (finished || this.allIdle())) {
      const waiters = this.settledWaiters;
      this.settledWaiters = [];
      for (const resolve of waiters) resolve();
    }
  };

  private readonly laneFailed = (error: Error): void => {
    this.failure ??= error;
    this.changed();
  };
}

/** The key of `message` for partition_by, or the first field it lacks. */
function keyOf(message: Message, fields: readonly string[]): string | { missing: string } {
  let key = '';
  for (let i = 0; i < fields.length; i++) {
    const value = fieldValue(message, fields[i]!);
    if (value === undefined) return { missing: fields[i]! };
    const text = typeof value === 'string' ? value : textOf(value);
    key = i === 0 ? text : `${key}\u0000${text}`;
  }
  return key;
}

function textOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    // A BigInt (a decoder that makes them) or a cycle.
    return String(value);
  }
}

/**
 * One socket and the messages waiting for it. A PUB first waits for its
 * subscribers; close() waits up to linger, then counts what is left.
 */
abstract class Lane {
  /** Messages handed to ZeroMQ. */
  sent = 0;
  protected pumping: Promise<void> | undefined;
  protected closed = false;
  protected ready: boolean;
  protected whenReady: Promise<void> = Promise.resolve();
  private subscriptions = 0;
  /** Resolves, with the time, once libzmq has let go of the closed socket. */
  private readonly socketGone: Promise<number>;
  /** Peers that completed the ZeroMQ handshake and are still there: what an error at the end can say. */
  peers = 0;

  constructor(
    protected readonly socket: Socket,
    protected readonly settings: LaneSettings,
    protected readonly owner: LaneOwner,
  ) {
    // Eager sends never wait: a send either queues at once or fails, so a batch goes without a promise turn per message.
    socket.sendTimeout = 0;
    // The monitor reports 'end' once libzmq has delivered what it held at close, or linger ran out.
    const events = socket.events;
    this.socketGone = new Promise<number>((resolve) => events.on('end', () => resolve(Date.now())));
    events.on('handshake', () => this.peers++);
    events.on('disconnect', () => (this.peers = Math.max(0, this.peers - 1)));
    this.ready = settings.push;
  }

  get endpoints(): string {
    return this.settings.endpoints;
  }

  get push(): boolean {
    return this.settings.push;
  }

  /** Never drops: a PUSH, or a no_drop PUB. */
  get waitsForPeers(): boolean {
    return this.settings.push || this.settings.noDrop;
  }

  /** Once bound or connected: a PUB starts waiting for its subscribers. */
  start(): void {
    if (!this.settings.push) this.whenReady = this.waitForSubscribers(this.socket as PubSocket);
  }

  abandon(): void {
    this.closed = true;
    if (!this.socket.closed) this.socket.close();
  }

  /** Messages accepted and not yet handed to ZeroMQ (a send under way included). */
  abstract get waiting(): number;

  /** What close() could not hand to ZeroMQ. */
  private leftBehind: number | undefined;

  /** Messages not handed to ZeroMQ: waiting now, or once closed, left behind. */
  get unsent(): number {
    return this.leftBehind ?? this.waiting;
  }

  get idle(): boolean {
    return this.waiting === 0;
  }

  /** Takes frames in order: sends what the socket takes now, keeps the rest. */
  abstract accept(frames: readonly Frame[]): void;

  /** Sends a partial batch now. */
  flushOpen(): void {}

  protected sendFailed(error: unknown): void {
    if (!this.closed) this.owner.failed(new RuntimeError(`${LABEL}: cannot send on ${this.settings.endpoints}: ${describe(error)}`));
  }

  async close(linger: number): Promise<LaneEnd> {
    this.flushOpen();
    // With messages to send, a PUB first waits for its subscribers (bounded by subscribe_delay); linger counts from here.
    if (this.pumping && !this.ready) await this.whenReady;
    const deadline = linger < 0 ? Infinity : Date.now() + linger;
    const backlog = this.pumping !== undefined;
    if (this.pumping) await (linger < 0 ? this.drainUntilStalled() : withTimeout(this.pumping, linger));
    const undelivered = (this.leftBehind = this.waiting);
    this.closed = true;
    const { stopping } = this.owner.context;
    // With linger -1 after a stop, what ZeroMQ holds for a slow peer gets WAIT_NOTICE_MS more to go out.
    const unbounded = linger < 0 ? (stopping.aborted ? WAIT_NOTICE_MS : -1) : Math.max(0, deadline - Date.now());
    const remaining = undelivered > 0 ? 0 : unbounded;
    // The last messages went to ZeroMQ just as linger ran out, after waiting for a slow peer: ZeroMQ
    // still holds them, and closing with no linger left drops them.
    const handedOverTooLate = backlog && linger > 0 && undelivered === 0 && remaining === 0;
    this.socket.linger = remaining;
    const closedAt = Date.now();
    // Closing rejects a send still waiting; the pump sees `closed` and leaves it to the count above.
    this.socket.close();
    this.owner.changed();
    // The process may exit right after this returns, which would drop what libzmq still holds: wait until it
    // lets go, with linger -1 until then or until the program is told to stop.
    const gone = remaining < 0 ? Promise.race([this.socketGone, whenAborted(stopping)]) : withTimeout(this.socketGone, remaining + 1000);
    const goneAt = await gone;
    // A stop that came before libzmq let go: it drops what it still holds.
    const stoppedFirst = remaining < 0 && goneAt === undefined;
    const tookAll = remaining > 0 && (goneAt ?? Date.now()) - closedAt >= remaining - Math.min(LINGER_TOLERANCE_MS, remaining / 2);
    const lingerRanOut = handedOverTooLate || stoppedFirst || tookAll;
    return { endpoints: this.settings.endpoints, undelivered, peers: this.peers, lingerRanOut };
  }

  /**
   * With linger -1: waits until the backlog has gone out, however long that
   * takes, unless the program is told to stop; from then on only while some
   * of it goes out, so that a SIGTERM ends a run whose peer is gone.
   */
  private async drainUntilStalled(): Promise<void> {
    const { stopping } = this.owner.context;
    while (this.pumping) {
      if (!stopping.aborted) {
        await Promise.race([this.pumping, whenAborted(stopping)]);
        continue;
      }
      const before = this.sent;
      await withTimeout(this.pumping, WAIT_NOTICE_MS);
      if (this.sent === before) return;
    }
  }

  /**
   * Resolves once the PUB's peers have subscribed (one subscription per
   * connect endpoint, or the first when binding), or after subscribe_delay.
   * A subscription read here is already in effect for the next send. It polls
   * rather than keeping a receive pending, which would cost every later send
   * a readiness check.
   */
  private async waitForSubscribers(socket: PubSocket): Promise<void> {
    const { subscribeDelayMs, subscribersWanted } = this.settings;
    const deadline = Date.now() + subscribeDelayMs;
    socket.receiveTimeout = 0;
    try {
      for (;;) {
        while (socket.readable) {
          const [message] = await socket.receive();
          if (message && message[0] === 1) this.subscriptions++;
        }
        const left = deadline - Date.now();
        if (this.subscriptions >= subscribersWanted || left <= 0 || this.closed) break;
        await new Promise((resolve) => setTimeout(resolve, Math.min(SUBSCRIPTION_POLL_MS, left)));
      }
    } catch {
      // The socket is gone; close() reports what was not sent.
    }
    if (this.subscriptions === 0 && !this.closed) {
      // A PUB drops what nobody subscribed to: say so rather than lose it silently.
      this.owner.context.warn(
        `${LABEL}: no subscriber on ${this.settings.endpoints} within subscribe_delay (${subscribeDelayMs / 1000} s); ` +
          'a PUB drops messages nobody subscribed to (start the SUB side first, or use socket_type "PUSH" to wait for a peer)',
      );
    }
    this.ready = true;
  }
}

/**
 * One message per frame, sent without a promise turn per message: while the
 * socket takes messages at once, a batch goes out in one synchronous loop.
 */
class EagerLane extends Lane {
  /** Batches accepted and not yet handed to the socket, oldest first; `next` is the first unsent frame of backlog[0]. */
  private backlog: Frame[][] = [];
  private next = 0;
  private backlogSize = 0;
  /** Frames whose eager send failed after all (a peer went away in between); they go out first. */
  private retry: Frame[] = [];
  /** A send is waiting for the socket to take a message (no peer, or the high-water mark reached). */
  private inFlight = false;

  get waiting(): number {
    return this.backlogSize + this.retry.length + (this.inFlight ? 1 : 0);
  }

  accept(frames: readonly Frame[]): void {
    let from = 0;
    if (this.ready && this.backlogSize === 0 && this.retry.length === 0 && !this.inFlight) {
      from = this.sendEagerly(frames, 0);
      if (from === frames.length) return;
    }
    this.backlog.push(from === 0 ? (frames as Frame[]) : frames.slice(from));
    this.backlogSize += frames.length - from;
    this.pumping ??= this.pump();
  }

  /** Sends from `frames[from]` while the socket takes messages at once; returns the index of the first frame not sent. */
  private sendEagerly(frames: readonly Frame[], from: number): number {
    const { socket } = this;
    const { topic, push } = this.settings;
    let i = from;
    for (; i < frames.length; i++) {
      // A PUB always takes a message (it drops past the high-water mark), so only a PUSH asks, which costs two system calls.
      if (push && !socket.writable) break;
      const frame = frames[i]!;
      // Writable means the send queues at once; it can still fail if a peer went away in between.
      socket.send(topic === undefined ? frame : [topic, frame]).catch(() => this.requeue(frame));
    }
    this.sent += i - from;
    return i;
  }

  private requeue(frame: Frame): void {
    if (this.closed) return;
    this.sent--;
    this.retry.push(frame);
    this.pumping ??= this.pump();
  }

  /** Moves the backlog into the socket, waiting for it whenever it cannot take more. */
  private async pump(): Promise<void> {
    try {
      await this.whenReady;
      for (;;) {
        this.flushBacklog();
        if (this.closed || (this.backlogSize === 0 && this.retry.length === 0)) break;
        const frame = this.retry.length > 0 ? this.retry.shift()! : this.takeOne();
        this.inFlight = true;
        this.socket.sendTimeout = -1;
        try {
          await this.socket.send(this.settings.topic === undefined ? frame : [this.settings.topic, frame]);
          this.sent++;
        } finally {
          this.inFlight = false;
          if (!this.closed) this.socket.sendTimeout = 0;
        }
      }
    } catch (error) {
      this.sendFailed(error);
    } finally {
      this.pumping = undefined;
      this.owner.changed();
    }
  }

  /** Sends retries, then backlog batches, as far as the socket takes them at once. */
  private flushBacklog(): void {
    while (this.retry.length > 0 && this.socket.writable) {
      const frame = this.retry.shift()!;
      const { topic } = this.settings;
      this.sent++;
      this.socket.send(topic === undefined ? frame : [topic, frame]).catch(() => this.requeue(frame));
    }
    if (this.retry.length > 0) return;
    while (this.backlog.length > 0) {
      const batch = this.backlog[0]!;
      const sentTo = this.sendEagerly(batch, this.next);
      this.backlogSize -= sentTo - this.next;
      if (sentTo < batch.length) {
        this.next = sentTo;
        break;
      }
      this.backlog.shift();
      this.next = 0;
    }
    this.owner.changed();
  }

  private takeOne(): Frame {
    const batch = this.backlog[0]!;
    const frame = batch[this.next++]!;
    this.backlogSize--;
    if (this.next === batch.length) {
      this.backlog.shift();
      this.next = 0;
    }
    return frame;
  }
}

/**
 * Frames sent one at a time, each awaited, so that none overtakes another:
 * batches (several messages joined by LF in one frame), and no_drop PUBs,
 * whose sends fail at the high-water mark and are tried again.
 */
class OrderedLane extends Lane {
  /** Frames to send, in order, from `head`; counts[i] is how many messages units[i] holds. */
  private units: Frame[] = [];
  private counts: number[] = [];
  private head = 0;
  /** Messages in units[head...]. */
  private queued = 0;
  /**
   * The batch being filled: written into `slab` from its start, `openBytes`
   * bytes holding `openCount` messages, each ended by LF. A sealed batch is a
   * view of the slab and the next one starts right after it, so a message's
   * bytes are copied once, and no buffer is allocated per batch.
   */
  private slab: Buffer = EMPTY;
  private openCount = 0;
  private openBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  get waiting(): number {
    return this.queued + this.openCount;
  }

  accept(frames: readonly Frame[]): void {
    const { batch } = this.settings;
    if (!batch) {
      for (const frame of frames) {
        this.units.push(frame);
        this.counts.push(1);
      }
      this.queued += frames.length;
    } else {
      const { max_messages: maxMessages, max_bytes: maxBytes } = batch;
      for (const frame of frames) {
        if (typeof frame === 'string' ? frame.indexOf('\n') >= 0 : frame.indexOf(LF) >= 0) {
          this.owner.context.reportError({
            error: 'output',
            reason: 'the message holds a line feed, which would split it in two where batches are split (at LF); send it without batch',
            source: 'output:zeromq',
            ...frameCopy(frame),
          });
          continue;
        }
        const before = this.openBytes;
        // A string's UTF-8 takes at most 3 bytes per UTF-16 unit: room for that, then its exact size is what was written.
        this.reserve(typeof frame === 'string' ? 3 * frame.length + 1 : frame.length + 1);
        const at = this.openBytes;
        const end = at + (typeof frame === 'string' ? this.slab.write(frame, at) : frame.copy(this.slab, at));
        this.slab[end] = LF;
        this.openBytes = end + 1;
        this.openCount++;
        // Past max_bytes, the batch goes without this message, which starts the next one.
        if (this.openCount > 1 && this.openBytes > maxBytes) this.sealAt(before, this.openCount - 1);
        if (this.openCount >= maxMessages || this.openBytes >= maxBytes) this.seal();
      }
      this.openEnds(batch);
    }
    if (this.queued > 0) this.pumping ??= this.pump();
  }

  /** `count` LF-terminated lines that pass through as bytes; cut into batches where they fill one. */
  acceptLines(bytes: Buffer, count: number): void {
    const batch = this.settings.batch!;
    const { max_messages: maxMessages, max_bytes: maxBytes } = batch;
    let start = 0;
    let left = count;
    while (left > 0) {
      const room = maxMessages - this.openCount;
      let end = bytes.length;
      let taken = left;
      if (left > room || this.openBytes + bytes.length - start > maxBytes) {
        // As many lines as fit; a line larger than max_bytes goes alone.
        end = start;
        taken = 0;
        for (const most = Math.min(room, left); taken < most; taken++) {
          const next = bytes.indexOf(LF, end) + 1;
          if (this.openBytes + next - start > maxBytes && (taken > 0 || this.openCount > 0)) break;
          end = next;
        }
      }
      // The reader reads into `bytes` again once this returns: the lines are copied into the batch.
      this.reserve(end - start);
      bytes.copy(this.slab, this.openBytes, start, end);
      this.openBytes += end - start;
      this.openCount += taken;
      start = end;
      left -= taken;
      if (this.openCount >= maxMessages || this.openBytes >= maxBytes || left > 0) this.seal();
    }
    this.openEnds(batch);
    if (this.queued > 0) this.pumping ??= this.pump();
  }

  override flushOpen(): void {
    this.seal();
  }

  /** Room in the slab for `bytes` more bytes of the open batch. */
  private reserve(bytes: number): void {
    const needed = this.openBytes + bytes;
    if (needed <= this.slab.length) return;
    // Slabs stay under glibc's 128 KiB mmap threshold when they can: larger allocations
    // are mapped and faulted in page by page, measured 10 times slower to fill.
    const slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, 2 * needed));
    this.slab.copy(slab, 0, 0, this.openBytes);
    this.slab = slab;
  }

  /** A batch left open goes at max_delay at the latest. */
  private openEnds(batch: BatchSettings): void {
    if (this.openCount > 0) this.timer ??= setTimeout(this.seal, batch.max_delay);
  }

  /** The batch being filled becomes one frame to send. */
  private readonly seal = (): void => {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.openCount > 0) this.sealAt(this.openBytes, this.openCount);
  };

  /** The open batch's first `bytes` bytes, `count` messages, go as one frame; what follows stays open. */
  private sealAt(bytes: number, count: number): void {
    this.units.push(this.slab.subarray(0, bytes));
    this.counts.push(count);
    this.queued += count;
    this.slab = this.slab.subarray(bytes);
    this.openBytes -= bytes;
    this.openCount -= count;
    if (!this.closed) this.pumping ??= this.pump();
  }

  private async pump(): Promise<void> {
    const { socket } = this;
    const { topic, noDrop } = this.settings;
    try {
      await this.whenReady;
      socket.sendTimeout = -1;
      let retries = 0;
      while (!this.closed && this.head < this.units.length) {
        const frame = this.units[this.head]!;
        try {
          await socket.send(topic === undefined ? frame : [topic, frame]);
        } catch (error) {
          if (this.closed) break;
          if (noDrop && (error as { code?: unknown }).code === 'EAGAIN') {
            // At a subscriber's high-water mark: nothing was sent; the same frame goes again shortly.
            await new Promise((resolve) => (retries++ < NO_DROP_QUICK_RETRIES ? setImmediate(resolve) : setTimeout(resolve, NO_DROP_RETRY_MS)));
            continue;
          }
          throw error;
        }
        retries = 0;
        const count = this.counts[this.head]!;
        this.head++;
        this.queued -= count;
        this.sent += count;
        if (this.head >= 1024 && this.head * 2 >= this.units.length) {
          this.units = this.units.slice(this.head);
          this.counts = this.counts.slice(this.head);
          this.head = 0;
        }
        this.owner.changed();
      }
    } catch (error) {
      this.sendFailed(error);
    } finally {
      this.pumping = undefined;
      this.owner.changed();
    }
  }
}

/** What `promise` gives, or undefined after `ms` (-1: no limit), whichever comes first. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  if (ms < 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves (to undefined) once `signal` aborts. */
function whenAborted(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(undefined);
    else signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
}

/**
 * Calls `onStop` when the program must stop, so that a write waiting for a
 * peer that never comes lets the chain drain and close() report the count.
 */
function watchStop(context: OutputContext, onStop: () => void): () => void {
  context.stopping.addEventListener('abort', onStop, { once: true });
  return () => context.stopping.removeEventListener('abort', onStop);
}
