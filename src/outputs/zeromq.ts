import { RuntimeError, describe, fatal } from '../core/errors.js';
import { defineOutput, type Output, type OutputContext } from '../core/plugin.js';
import { attach, checkEndpoints, endpointList, endpointOptions, loadZeroMQ, plural, type ZeroMQ } from '../io/zeromq.js';

const LABEL = 'zeromq output';

/**
 * Messages write() takes ahead of the socket before it makes the chain wait.
 * Small, so memory stays bounded, but above one batch so that the last batch
 * before end of input is accepted and close() can count what is left.
 */
const BACKLOG_LIMIT = 2048;

/** How often a PUB looks for subscriptions while it waits for its first subscribers. */
const SUBSCRIPTION_POLL_MS = 3;

/** libzmq ends a socket that ran out of linger at the deadline; ending this close to it means it probably did. */
const LINGER_TOLERANCE_MS = 20;

/** One message's bytes: text from the encoder, or raw bytes that are not UTF-8. */
type Frame = string | Buffer;

type PushSocket = InstanceType<ZeroMQ['Push']>;
type PubSocket = InstanceType<ZeroMQ['XPublisher']>;

export default defineOutput({
  summary: 'Send each message as one ZeroMQ message on a PUB or PUSH socket.',
  description: [
    'PUB (the default) fans every message out to all connected subscribers; a subscriber that falls more than socket_hwm messages behind loses messages, by design. ' +
      'Before its first message a PUB waits, up to subscribe_delay seconds, until its peers have subscribed (one per connect endpoint, or the first one when it binds), ' +
      'so that a one-liner such as `echo \'{"a":1}\' | message-passing --output ZeroMQ ...` does not lose its message to the "slow joiner" race.',
    'PUSH hands each message to one peer, round robin, and never drops: with no peer connected, or every peer socket_hwm messages behind, the chain waits, ' +
      'so the input slows down instead of memory growing. A PUSH queues messages only for peers that are connected (ZMQ_IMMEDIATE), never for one that is absent.',
    'At the end, the output waits up to `linger` milliseconds for its messages to go out, and does not exit before ZeroMQ has handed them to the network. ' +
      'A PUSH that cannot deliver within linger prints the number of messages left behind on stderr and exits with status 1 (with no peer at all, the count is exact). ' +
      'What ZeroMQ cannot tell: how many messages it still held for a connected but slow peer when linger ran out (the program then says that some were dropped, ' +
      'without a count), nor how many it had queued for a peer that disconnected during the run (those are lost without notice, as with any ZeroMQ PUSH).',
  ].join('\n\n'),
  examples: [
    'echo \'{"a":1}\' | message-passing --output ZeroMQ --output_options \'{connect: "tcp://127.0.0.1:5552"}\'',
    'message-passing --input ZeroMQ --input_options \'{socket_bind: "tcp://*:5552"}\' --output ZeroMQ --output_options \'{socket_bind: "tcp://*:5553", socket_type: "PUSH"}\'',
    'message-passing --output ZeroMQ --output_options \'{socket_bind: "tcp://*:5554", topic: "logs"}\'',
  ],
  options: {
    ...endpointOptions,
    socket_type: {
      type: 'string',
      choices: ['PUB', 'PUSH'],
      default: 'PUB',
      description: 'PUB sends every message to every subscriber (lossy past socket_hwm); PUSH sends each message to one peer and waits rather than drop.',
    },
    linger: {
      type: 'integer',
      min: -1,
      default: 2000,
      description:
        'Milliseconds allowed at the end for queued messages to go out; -1 waits as long as it takes. Perl\'s default is 0 (drop at exit); 2000 delivers what a live peer can take.',
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
  },
  check(options) {
    const problem = checkEndpoints(options);
    if (problem) return problem;
    if (options.socket_type === 'PUSH' && options.topic !== undefined) {
      return 'topic applies to PUB sockets only (a PUSH peer has no subscription to match it); drop topic or use socket_type "PUB"';
    }
    return undefined;
  },
  async create(options, context) {
    const zmq = await loadZeroMQ().catch((error: unknown) => {
      throw fatal(LABEL, error);
    });
    let socket: PushSocket | PubSocket;
    if (options.socket_type === 'PUSH') {
      // linger is set for real by close(); until then an abrupt exit must not hang on queued messages.
      socket = new zmq.Push({ sendHighWaterMark: options.socket_hwm, immediate: true, linger: 0 });
    } else {
      // An XPUB is a PUB that also shows the subscriptions arriving: that is how the first send waits for its subscribers.
      socket = new zmq.XPublisher({ sendHighWaterMark: options.socket_hwm, linger: 0 });
      socket.verbosity = 'allSubs';
    }
    // Eager sends never wait: a send either queues at once or fails, so write() can send a batch without a promise turn per message.
    socket.sendTimeout = 0;
    // The monitor reports 'end' once libzmq has delivered what it held at close, or linger ran out.
    const events = socket.events;
    const socketGone = new Promise<number>((resolve) => events.on('end', () => resolve(Date.now())));
    // Peers that completed the ZeroMQ handshake and are still there: what an error at the end can say.
    const peers = { connected: 0 };
    events.on('handshake', () => peers.connected++);
    events.on('disconnect', () => (peers.connected = Math.max(0, peers.connected - 1)));
    await attach(socket, options).catch((error: unknown) => {
      throw fatal(LABEL, error);
    });
    const subscribersWanted = options.connect ? options.connect.length : 1;
    return new ZeroMQOutput(socket, {
      linger: options.linger,
      topic: options.topic,
      endpoints: endpointList(options),
      push: options.socket_type === 'PUSH',
      subscribersWanted,
      subscribeDelayMs: options.subscribe_delay * 1000,
    }, socketGone, peers, context);
  },
});

interface Settings {
  linger: number;
  topic: string | undefined;
  endpoints: string;
  push: boolean;
  subscribersWanted: number;
  subscribeDelayMs: number;
}

class ZeroMQOutput implements Output {
  /** Batches accepted by write() and not yet handed to the socket, oldest first; `next` is the first unsent frame of backlog[0]. */
  private backlog: Frame[][] = [];
  private next = 0;
  private backlogSize = 0;
  /** Frames whose eager send failed after all (a peer went away in between); they go out first. */
  private retry: Frame[] = [];
  /** A send is waiting for the socket to take a message (no peer, or the high-water mark reached). */
  private inFlight = false;
  private pumping: Promise<void> | undefined;
  private roomWaiter: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  /** Once the chain must stop, write() no longer waits for room: close() counts what is left. */
  private stopped = false;
  private ready: boolean;
  private readonly whenReady: Promise<void>;
  private subscriptions = 0;
  private unwatchStop: (() => void) | undefined;
  /** settled() calls waiting for the backlog to reach ZeroMQ. */
  private settledWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: PushSocket | PubSocket,
    private readonly settings: Settings,
    /** Resolves, with the time, once libzmq has let go of the closed socket. */
    private readonly socketGone: Promise<number>,
    private readonly peers: { readonly connected: number },
    private readonly context: OutputContext,
  ) {
    if (settings.push) {
      this.ready = true;
      this.whenReady = Promise.resolve();
    } else {
      this.ready = false;
      this.whenReady = this.waitForSubscribers(socket as PubSocket);
    }
  }

  /** Unencoded frames may come straight from the input: each is one ZeroMQ message. */
  readonly passThrough = 'frames';

  /** Resolves once every message written so far has been handed to ZeroMQ. */
  settled(): void | Promise<void> {
    if (this.backlogSize === 0 && this.retry.length === 0 && !this.inFlight) return;
    return new Promise<void>((resolve) => this.settledWaiters.push(resolve));
  }

  write(frames: readonly Frame[]): void | Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new RuntimeError(`${LABEL}: write after close`);
    let from = 0;
    if (this.ready && this.backlogSize === 0 && this.retry.length === 0 && !this.inFlight) {
      from = this.sendEagerly(frames, 0);
      if (from === frames.length) return;
    }
    this.backlog.push(from === 0 ? (frames as Frame[]) : frames.slice(from));
    this.backlogSize += frames.length - from;
    this.pumping ??= this.pump();
    if (this.backlogSize <= BACKLOG_LIMIT || this.stopped) return;
    // Watched from the first wait on, when the program's own signal handlers are in place.
    this.unwatchStop ??= watchStop(this.context, () => {
      this.stopped = true;
      this.wakeWriter();
    });
    return new Promise<void>((resolve) => {
      this.roomWaiter = resolve;
    }).then(() => {
      if (this.failure) throw this.failure;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.unwatchStop?.();
    // With messages to send, a PUB first waits for its subscribers (bounded by subscribe_delay); linger counts from here.
    if (this.pumping && !this.ready) await this.whenReady;
    const { linger, push, endpoints } = this.settings;
    const deadline = linger < 0 ? Infinity : Date.now() + linger;
    if (this.pumping) await withTimeout(this.pumping, linger);
    const undelivered = this.backlogSize + this.retry.length + (this.inFlight ? 1 : 0);
    this.closed = true;
    const remaining = linger < 0 ? -1 : undelivered > 0 ? 0 : Math.max(0, deadline - Date.now());
    this.socket.linger = remaining;
    const closedAt = Date.now();
    // Closing rejects a send still waiting; pump() sees `closed` and leaves it to the count below.
    this.socket.close();
    this.wakeWriter();
    // The process may exit right after this returns, which would drop what libzmq still holds: wait until it lets go.
    const goneAt = (await withTimeout(this.socketGone, remaining < 0 ? -1 : remaining + 1000)) ?? Date.now();
    const lingerRanOut = remaining > 0 && goneAt - closedAt >= remaining - Math.min(LINGER_TOLERANCE_MS, remaining / 2);
    if (this.failure) throw this.failure;
    if (undelivered > 0) {
      const why =
        this.peers.connected === 0
          ? `no peer is connected to the ${push ? 'PUSH' : 'PUB'} socket (${endpoints}); start the receiving side first, or raise linger`
          : `the peers of the ${push ? 'PUSH' : 'PUB'} socket (${endpoints}) did not take them in time; raise linger`;
      throw new RuntimeError(`${LABEL}: ${plural(undelivered, 'message')} could not be delivered within linger (${linger} ms): ${why}`);
    }
    if (push && lingerRanOut) {
      throw new RuntimeError(
        `${LABEL}: linger (${linger} ms) ran out while ZeroMQ still held messages for a slow peer of the PUSH socket (${endpoints}); ` +
          'ZeroMQ dropped them without saying how many; raise linger',
      );
    }
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
    return i;
  }

  private requeue(frame: Frame): void {
    if (this.closed) return;
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
        } finally {
          this.inFlight = false;
          if (!this.closed) this.socket.sendTimeout = 0;
        }
      }
    } catch (error) {
      if (!this.closed) this.failure = new RuntimeError(`${LABEL}: cannot send on ${this.settings.endpoints}: ${describe(error)}`);
    } finally {
      this.pumping = undefined;
      this.wakeWriter();
    }
  }

  /** Sends retries, then backlog batches, as far as the socket takes them at once. */
  private flushBacklog(): void {
    while (this.retry.length > 0 && this.socket.writable) {
      const frame = this.retry.shift()!;
      const { topic } = this.settings;
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
    if (this.backlogSize <= BACKLOG_LIMIT) this.wakeWriter();
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

  private wakeWriter(): void {
    const wake = this.roomWaiter;
    this.roomWaiter = undefined;
    wake?.();
    if (this.settledWaiters.length > 0 && ((this.backlogSize === 0 && this.retry.length === 0 && !this.inFlight) || this.closed || this.failure)) {
      const waiters = this.settledWaiters;
      this.settledWaiters = [];
      for (const resolve of waiters) resolve();
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
      this.context.warn(
        `${LABEL}: no subscriber on ${this.settings.endpoints} within subscribe_delay (${subscribeDelayMs / 1000} s); ` +
          'a PUB drops messages nobody subscribed to (start the SUB side first, or use socket_type "PUSH" to wait for a peer)',
      );
    }
    this.ready = true;
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

/**
 * Calls `onStop` when the program must stop, so that a write waiting for a
 * peer that never comes lets the chain drain and close() report the count.
 */
function watchStop(context: OutputContext, onStop: () => void): () => void {
  context.stopping.addEventListener('abort', onStop, { once: true });
  return () => context.stopping.removeEventListener('abort', onStop);
}
