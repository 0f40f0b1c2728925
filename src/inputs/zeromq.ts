import { fatal } from '../core/errors.js';
import { defineInput, type Input, type InputContext } from '../core/plugin.js';
import { attach, checkEndpoints, endpointError, endpointOptions, loadZeroMQ, type ZeroMQ } from '../io/zeromq.js';

const LABEL = 'zeromq input';

/** Messages handed to the chain at once: what is already there is read without a wait per message. */
const BATCH_LIMIT = 512;

/** Longest run of receives between two checks that a message is ready. */
const READ_RUN = 32;

type PullSocket = InstanceType<ZeroMQ['Pull']>;
type SubSocket = InstanceType<ZeroMQ['Subscriber']>;

export default defineInput({
  summary: 'Receive messages on a ZeroMQ SUB or PULL socket, one frame per message.',
  description: [
    'SUB (the default) receives what PUB peers publish, filtered by the subscribe prefixes; PULL takes its share of what PUSH peers send. ' +
      'A multi-part message yields its last part as the frame (the first parts are the topic). A message that is not valid UTF-8 goes to the error output.',
    'On SIGINT or SIGTERM the input stops taking new messages (a bound socket unbinds first), hands on everything ZeroMQ had already received on this side, ' +
      'and the chain drains. Messages a peer had queued for this input but not yet sent stay with that peer, or are dropped by it, as ZeroMQ does.',
  ].join('\n\n'),
  examples: [
    'message-passing --input ZeroMQ --input_options \'{socket_bind: "tcp://*:5552"}\' --output STDOUT',
    'message-passing --input ZeroMQ --input_options \'{connect: "tcp://127.0.0.1:5553", socket_type: "PULL"}\' --output File --output_options \'{filename: "out.log"}\'',
    'message-passing --input ZeroMQ --input_options \'{connect: "tcp://127.0.0.1:5554", subscribe: ["logs", "audit"]}\'',
  ],
  options: {
    ...endpointOptions,
    socket_type: {
      type: 'string',
      choices: ['SUB', 'PULL'],
      default: 'SUB',
      description: 'SUB receives what PUB peers publish (every subscriber gets a copy); PULL takes a share of what PUSH peers send.',
    },
    subscribe: {
      type: 'strings',
      default: [''],
      description: 'SUB only: prefixes of the messages (or of their topic part) to receive; "" (the default) receives everything.',
    },
  },
  check(options) {
    const problem = checkEndpoints(options);
    if (problem) return problem;
    const subscribesToAll = options.subscribe.length === 1 && options.subscribe[0] === '';
    if (options.socket_type === 'PULL' && !subscribesToAll) {
      return 'subscribe applies to SUB sockets only (a PULL receives everything sent to it); drop subscribe or use socket_type "SUB"';
    }
    return undefined;
  },
  async create(options, context) {
    const zmq = await loadZeroMQ().catch((error: unknown) => {
      throw fatal(LABEL, error);
    });
    let socket: PullSocket | SubSocket;
    if (options.socket_type === 'PULL') {
      socket = new zmq.Pull({ receiveHighWaterMark: options.socket_hwm, linger: 0 });
    } else {
      const subscriber = new zmq.Subscriber({ receiveHighWaterMark: options.socket_hwm, linger: 0 });
      subscriber.subscribe(...options.subscribe);
      socket = subscriber;
    }
    await attach(socket, options).catch((error: unknown) => {
      throw fatal(LABEL, error);
    });
    return new ZeroMQInput(socket, options.socket_bind ?? [], (options.socket_hwm || 10000) * (options.connect?.length ?? 1), context);
  },
});

class ZeroMQInput implements Input {
  /** Number of the next message received (1-based), for error records and the chain. */
  private frameNumber = 1;
  /** The frame (last part) of each message received and not yet handed on. */
  private received: Buffer[] = [];
  private failure: unknown;

  constructor(
    private readonly socket: PullSocket | SubSocket,
    private readonly bound: readonly string[],
    /** At most this many queued messages are still read after a stop, when new ones may keep coming. */
    private readonly drainLimit: number,
    private readonly context: InputContext,
  ) {}

  async run(): Promise<void> {
    const { socket } = this;
    const { stopping } = this.context;
    let waiting = false;
    // Waiting means nothing was queued: closing ends the wait, and loses nothing.
    const stop = () => {
      if (waiting) socket.close();
    };
    stopping.addEventListener('abort', stop, { once: true });
    try {
      // Reads below never wait; the one wait for a first message sets its own timeout.
      socket.receiveTimeout = 0;
      while (!stopping.aborted) {
        if (!socket.readable) {
          waiting = true;
          socket.receiveTimeout = -1;
          let parts: Buffer[];
          try {
            parts = await socket.receive();
          } catch (error) {
            if (socket.closed) break;
            throw error;
          } finally {
            waiting = false;
            if (!socket.closed) socket.receiveTimeout = 0;
          }
          this.take(parts);
        }
        await this.readQueued(BATCH_LIMIT);
        const wait = this.emitBatch();
        if (wait) await wait;
      }
      if (!socket.closed) await this.drain();
    } finally {
      stopping.removeEventListener('abort', stop);
      if (!socket.closed) socket.close();
    }
  }

  /** After a stop: stop accepting new messages where possible, then hand on what ZeroMQ already queued here. */
  private async drain(): Promise<void> {
    const { socket } = this;
    let limit = this.drainLimit;
    if (this.bound.length > 0) {
      // Unbinding closes the door while the messages already queued stay readable.
      for (const endpoint of this.bound) {
        await socket.unbind(endpoint).catch((error: unknown) => {
          throw fatal(LABEL, endpointError('bind', endpoint, error));
        });
      }
      limit = Infinity;
    }
    while (limit > 0 && socket.readable) {
      const before = this.received.length;
      await this.readQueued(Math.min(BATCH_LIMIT, limit));
      limit -= this.received.length - before;
      const wait = this.emitBatch();
      if (wait) await wait;
    }
  }

  /**
   * Reads the messages ZeroMQ has ready, up to a batch of `limit`, without
   * waiting for more. Asking whether a message is ready costs two system
   * calls, so it is asked once per run of receives, runs growing from 1 to
   * READ_RUN; a receive that finds nothing just fails with EAGAIN.
   */
  private readQueued(limit: number): Promise<void> | undefined {
    const { socket } = this;
    let last: Promise<void> | undefined;
    let run = 1;
    // Each receive() settles at once here; their callbacks run in order, so awaiting the last awaits them all.
    for (let count = this.received.length; count < limit && socket.readable; ) {
      const end = Math.min(limit, count + run);
      for (; count < end; count++) last = socket.receive().then(this.take, this.receiveFailed);
      if (run < READ_RUN) run *= 2;
    }
    return last?.then(() => {
      if (this.failure !== undefined) throw this.failure;
    });
  }

  private readonly receiveFailed = (error: unknown): void => {
    // EAGAIN: nothing more was queued, which readQueued expects at the end of a run.
    if ((error as { code?: unknown } | undefined)?.code !== 'EAGAIN') this.failure ??= error;
  };

  private readonly take = (parts: Buffer[]): void => {
    this.frameNumber++;
    this.received.push(parts[parts.length - 1]!);
  };

  private emitBatch(): void | Promise<void> {
    const received = this.received;
    if (received.length === 0) return;
    this.received = [];
    // Frames go as bytes: the chain decides whether they pass through or are decoded (and checked as UTF-8).
    return this.context.emit({ frames: received, source: 'zeromq', first: this.frameNumber - received.length });
  }
}
