import { isUtf8 } from 'node:buffer';
import { fatal } from '../core/errors.js';
import { defineInput, type Codec, type Frame, type Input, type InputContext } from '../core/plugin.js';
import type { FrameSink } from '../io/framer.js';
import { attach, checkEndpoints, endpointError, endpointOptions, loadZeroMQ, type ZeroMQ } from '../io/zeromq.js';

const LABEL = 'zeromq input';

/** Messages handed to the chain at once: what is already there is read without a wait per message. */
const BATCH_LIMIT = 512;

const LF = 10;

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
    'A frame that holds several messages separated by LF (what a ZeroMQ output with batch sends) is split into its messages: by default with the JSON decoder, ' +
      'whose frames hold no raw LF otherwise, and not with Null, where a LF may be part of a message (split_lines: true asks for it). ' +
      'socket_hwm then counts frames: a receiver of batches of 256 queues up to 256 times socket_hwm messages, so lower it to bound memory.',
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
    split_lines: {
      type: 'boolean',
      description:
        'Split each frame at LF into several messages (a ZeroMQ output with batch sends them so; empty parts are skipped). Default: true with a text decoder such as JSON, false with Null.',
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
    const split = options.split_lines ?? splitsByDefault(context.decoder);
    return new ZeroMQInput(socket, options.socket_bind ?? [], (options.socket_hwm || 10000) * (options.connect?.length ?? 1), split, context);
  },
});

/**
 * A text decoder other than Null reads one value per line (JSON: a raw LF can
 * only separate values), so a frame with LFs holds several messages; with Null
 * a LF may be part of one, and with a binary decoder (Pickle) any byte may be.
 */
function splitsByDefault(decoder: Codec | undefined): boolean {
  return decoder !== undefined && decoder.form === 'text' && decoder.identity !== true;
}

class ZeroMQInput implements Input {
  /** Number of the next message (1-based), for error records and the chain: a frame split in N takes N numbers. */
  private frameNumber = 1;
  /** ZeroMQ messages received, split or not. */
  private framesReceived = 0;
  /** The frame (last part) of each message received and not yet handed on. */
  private received: Buffer[] = [];
  /** The messages they hold: one per frame, or with split, one per line of a frame that has several. */
  private receivedMessages = 0;
  /** Whether one of them holds a LF and is to be split. */
  private receivedLines = false;
  /** The chain's way in for lines that pass through as bytes, once asked for; null when they cannot. */
  private lineSink: FrameSink | null | undefined;
  private failure: unknown;

  constructor(
    private readonly socket: PullSocket | SubSocket,
    private readonly bound: readonly string[],
    /** At most this many queued ZeroMQ messages are still read after a stop, when new ones may keep coming. */
    private readonly drainLimit: number,
    /** Frames are split at LF into messages. */
    private readonly split: boolean,
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
      const before = this.framesReceived;
      await this.readQueued(BATCH_LIMIT, limit);
      limit -= this.framesReceived - before;
      const wait = this.emitBatch();
      if (wait) await wait;
    }
  }

  /**
   * Reads the messages ZeroMQ has ready, up to a batch of `limit` messages
   * (and at most `frames` ZeroMQ messages), without waiting for more. Asking
   * whether a message is ready costs two system calls, so it is asked once
   * per run of receives, runs growing from 1 to READ_RUN while each frame is
   * one message; a receive that finds nothing just fails with EAGAIN.
   */
  private async readQueued(limit: number, frames = Infinity): Promise<void> {
    const { socket } = this;
    let run = 1;
    const lastFrame = this.framesReceived + frames;
    while (this.receivedMessages < limit && this.framesReceived < lastFrame && socket.readable) {
      const before = this.receivedMessages;
      const count = Math.min(run, limit - before, lastFrame - this.framesReceived);
      let last: Promise<void> | undefined;
      // Each receive() settles at once here; their callbacks run in order, so awaiting the last awaits them all.
      for (let i = 0; i < count; i++) last = socket.receive().then(this.take, this.receiveFailed);
      await last;
      if (this.failure !== undefined) throw this.failure;
      // Frames that held several messages (batches): one at a time, so that a batch handed on stays near `limit`.
      run = this.receivedMessages - before > count ? 1 : Math.min(run * 2, READ_RUN);
    }
  }

  private readonly receiveFailed = (error: unknown): void => {
    // EAGAIN: nothing more was queued, which readQueued expects at the end of a run.
    if ((error as { code?: unknown } | undefined)?.code !== 'EAGAIN') this.failure ??= error;
  };

  private readonly take = (parts: Buffer[]): void => {
    const frame = parts[parts.length - 1]!;
    this.framesReceived++;
    this.received.push(frame);
    if (this.split && frame.indexOf(LF) >= 0) {
      this.receivedLines = true;
      this.receivedMessages += lineCount(frame);
    } else this.receivedMessages++;
  };

  private emitBatch(): void | Promise<void> {
    const received = this.received;
    if (received.length === 0) return;
    this.received = [];
    this.receivedMessages = 0;
    if (!this.receivedLines) return this.emitFrames(received);
    this.receivedLines = false;
    return this.emitSplit(received);
  }

  /** Frames go as bytes: the chain decides whether they pass through or are decoded (and checked as UTF-8). */
  private emitFrames(frames: Frame[]): void | Promise<void> {
    const first = this.frameNumber;
    this.frameNumber += frames.length;
    return this.context.emit({ frames, source: 'zeromq', first });
  }

  /**
   * Frames in order, those with LFs split into their messages. A frame of
   * whole lines that all pass through as bytes (a batch of JSON lines in the
   * form the encoder writes) goes to the chain in one piece, as lines read
   * from a file would: no copy and no Buffer per message.
   */
  private async emitSplit(frames: readonly Buffer[]): Promise<void> {
    const sink = this.passSink();
    let pending: Frame[] = [];
    for (const frame of frames) {
      if (frame.indexOf(LF) < 0) {
        pending.push(frame);
        continue;
      }
      const passing = sink ? passingLines(sink, frame) : 0;
      if (passing === 0) {
        splitInto(pending, frame, !sink && this.context.decoder?.form === 'text');
        continue;
      }
      if (pending.length > 0) {
        const wait = this.emitFrames(pending);
        pending = [];
        if (wait) await wait;
      }
      this.frameNumber += passing;
      const wait = sink!.lines!(frame, passing, 0);
      if (wait) await wait;
    }
    if (pending.length > 0) await this.emitFrames(pending);
  }

  private passSink(): FrameSink | undefined {
    if (this.lineSink === undefined) {
      const sink = this.context.sink({ source: 'zeromq' });
      this.lineSink = sink.lines ? sink : null;
    }
    return this.lineSink ?? undefined;
  }
}

/** Messages in a frame split at LF: its non-empty lines, at most. */
function lineCount(frame: Buffer): number {
  let count = frame[frame.length - 1] === LF ? 0 : 1;
  for (let at = frame.indexOf(LF); at >= 0; at = frame.indexOf(LF, at + 1)) count++;
  return count;
}

/**
 * How many lines `frame` holds when it is whole lines (LF at the end, none
 * empty) that all pass through as bytes; 0 when any does not.
 */
function passingLines(sink: FrameSink, frame: Buffer): number {
  if (frame[frame.length - 1] !== LF) return 0;
  const { passes } = sink;
  // JSON lines that are not UTF-8 take the decoding path, which reports them.
  if (passes && !isUtf8(frame)) return 0;
  let count = 0;
  for (let start = 0; start < frame.length; count++) {
    const end = frame.indexOf(LF, start);
    if (end === start || (passes && !passes(frame, start, end))) return 0;
    start = end + 1;
  }
  return count;
}

/** The non-empty parts of `frame` between LFs, as text when it is UTF-8 and `text` allows, else as bytes. */
function splitInto(out: Frame[], frame: Buffer, text: boolean): void {
  if (text && isUtf8(frame)) {
    for (const line of frame.toString('utf8').split('\n')) if (line !== '') out.push(line);
    return;
  }
  for (let start = 0; start < frame.length; ) {
    let end = frame.indexOf(LF, start);
    if (end < 0) end = frame.length;
    if (end > start) out.push(frame.subarray(start, end));
    start = end + 1;
  }
}
