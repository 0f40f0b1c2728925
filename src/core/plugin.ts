import type { FrameSink } from '../io/framer.js';
import type { ErrorRecord } from './errors.js';
import type { OptionsOf, OptionsSchema } from './options.js';
import type { Clock, Hold, KeyedStateOptions, KeyedState } from './state.js';

/** A decoded message: whatever the decoder made of a frame (usually an object). */
export type Message = unknown;

/** What a filter may return: one message, none (drop), or a list (each goes on). */
export type FilterResult = Message | readonly Message[] | null | undefined;

/**
 * `message` as a result that means this one message, whatever it is: returned
 * bare, a null reads as a drop and a list as several messages, yet both are
 * JSON values a decoder makes.
 */
export function one(message: Message): FilterResult {
  return message === null || Array.isArray(message) ? [message] : message;
}

/** One frame: text where the framing made text (lines), bytes otherwise (binary codecs, datagrams, ZeroMQ). */
export type Frame = string | Buffer;

/**
 * Called once every message of a batch is out: written by the output (handed to
 * the OS for files and pipes, queued by ZeroMQ), dropped on purpose by a
 * filter, or written to the error output.
 */
export type Acknowledge = () => void;

/** Frames an input hands to the chain, in order. */
export interface FrameBatch {
  /** One entry per frame; '' (or an empty Buffer) stands for an empty frame and is skipped. */
  frames: readonly Frame[];
  /** Where they came from, for error records: 'stdin', 'file:/var/log/app.log', 'zeromq'. */
  source: string;
  /** Frame number of frames[0] in its stream (1-based). */
  first: number;
  /** Called on each decoded object message with its frame number: how an input says where a message came from. */
  annotate?: (message: Record<string, unknown>, number: number) => void;
  /** Inputs whose source can be told "this is safely out" (checkpoints, queues) pass one; others pay nothing. */
  ack?: Acknowledge;
}

/** What every plugin is handed: where errors go, and when to stop. */
export interface PluginContext {
  /** Sends one record to the error output; the chain goes on. */
  reportError(record: ErrorRecord): void;
  /** One line on stderr for a person (a peer that never came, a wait): prefixed with the program's name. */
  warn(text: string): void;
  /** Aborts when the program must stop (signal, closed output): inputs stop reading, waits give up. */
  readonly stopping: AbortSignal;
}

/** What an input says about one stream it frames (a file, a connection, stdin). */
export interface StreamOptions {
  /** For error records: 'stdin', 'file:PATH', 'tcp:HOST:PORT'. */
  source: string;
  annotate?: FrameBatch['annotate'];
  /**
   * With it, batches are acknowledged: called as each batch is handed to the
   * chain, with the offset in the stream just after its last frame, it returns
   * what to call once that batch is out.
   */
  acknowledge?: (end: number) => Acknowledge;
}

export interface InputContext extends PluginContext {
  /** Hands decoded-or-not frames to the chain. Resolves when the chain can take more: await it, that is the backpressure. */
  emit(batch: FrameBatch): void | Promise<void>;
  /**
   * Where a framer of one stream sends its frames: the chain decides there
   * whether frames pass through as bytes or are decoded (core/passthrough.ts).
   */
  sink(stream: StreamOptions): FrameSink;
  /** The decoder frames go to, for an input whose framing depends on it (ZeroMQ splits batched JSON frames at LF). */
  readonly decoder?: Codec;
}

export interface Input {
  /** Reads until the input ends or `stopping` aborts; returns once everything read was emitted. */
  run(): Promise<void>;
  /** Called once the chain has drained and the output closed: the last acknowledgements are in (save a checkpoint). */
  close?(): Promise<void>;
}

export interface OutputContext extends PluginContext {
  /** The destination is gone for good (closed pipe): stop quietly, exit 0. */
  destinationClosed(): void;
}

export interface Output {
  /**
   * What may reach this output unencoded when nothing looks inside messages:
   * 'lines' (LF-terminated runs of frames in one Buffer, through writeLines:
   * files and pipes) or 'frames' (each frame's own bytes, through write:
   * ZeroMQ). Absent: encoded frames only.
   */
  readonly passThrough?: 'lines' | 'frames';
  /** Encoded frames, and the messages they came from (same order). Await it: backpressure. */
  write(frames: readonly Frame[], messages: readonly Message[]): void | Promise<void>;
  /** With passThrough 'lines': `count` LF-terminated lines; `bytes` may be overwritten once this returns or resolves. */
  writeLines?(bytes: Buffer, count: number): void | Promise<void>;
  /**
   * Resolves once everything written so far has left this process's buffers
   * (handed to the OS, queued by ZeroMQ): what acknowledgements wait for.
   * Absent: a resolved write means that already.
   */
  settled?(): void | Promise<void>;
  /** Delivers whatever is queued, then releases resources. Throws RuntimeError on loss. */
  close(): Promise<void>;
  /** Counts of its own for the --stats line, such as `endpoints=tcp://a:1=123,tcp://b:2=456`. */
  stats?(): string | undefined;
  /**
   * Messages write() accepted that have not been handed on yet (a backlog
   * waiting for a peer); after close(), those left behind. --stats counts them
   * as queued, not out.
   */
  queued?(): number;
}

export interface FilterContext extends PluginContext {
  /**
   * Sends one message or a list of them on from this filter at any time (timers,
   * callbacks); order with the stream is kept. A string is one message.
   */
  push(messages: Message | readonly Message[]): void;
  /** The filter's clock: real time in the program, a hand-driven one in unit tests. */
  readonly clock: Clock;
  /**
   * Calls `fire` after `ms` on the clock, in stream order (never in the middle
   * of a batch); what it returns goes on down the chain. Returns a cancel function.
   */
  schedule(ms: number, fire: () => FilterResult): () => void;
  /** A map of per-key state bounded by max_keys, whose entries hold their batches' acknowledgements until taken. */
  keyed<V>(options: KeyedStateOptions<V>): KeyedState<V>;
  /** The acknowledgement of the batch being filtered now, if it has one (see Hold). */
  currentHold(): Hold | undefined;
  /** A decoder or encoder by name, with its default options (the Decoder and Encoder filters use it). */
  codec(name: string): Promise<Codec>;
}

export interface Filter {
  filter(message: Message): FilterResult | Promise<FilterResult>;
  /** Called once at the end; what it returns goes on down the chain. */
  flush?(): FilterResult | Promise<FilterResult>;
  close?(): void | Promise<void>;
}

export interface Codec {
  /** What decode takes and encode gives: strings (checked as UTF-8 before decode) or Buffers. */
  readonly form: 'text' | 'bytes';
  decode(frame: string | Buffer): Message;
  encode(message: Message): Frame;
  /** decode and encode leave the frame as it is (Null): frames may pass through as bytes. */
  readonly identity?: boolean;
  /**
   * True when this codec's encode(decode(frame)) gives bytes[start, end) back
   * unchanged (it may say false when unsure): with this codec on both sides and
   * no filters, such frames pass through as bytes. The same function on both sides.
   */
  readonly verbatim?: (bytes: Uint8Array, start: number, end: number) => boolean;
}

export type CodecContext = Record<string, never>;

export interface Roles {
  input: { context: InputContext; instance: Input };
  output: { context: OutputContext; instance: Output };
  filter: { context: FilterContext; instance: Filter };
  codec: { context: CodecContext; instance: Codec };
}
export type Role = keyof Roles;

/** A plugin declares itself once; validation, --help, --list and the man page all read this. */
export interface PluginDefinition<R extends Role, Schema extends OptionsSchema = OptionsSchema> {
  role: R;
  /** One line for --list. */
  summary: string;
  /** A paragraph or two for --help PLUGIN and the man page. */
  description?: string;
  /** Command lines shown in --help PLUGIN. */
  examples?: readonly string[];
  options: Schema;
  /** Rules that span several options; returns what is wrong, or nothing. */
  check?(options: OptionsOf<Schema>): string | undefined;
  create(options: OptionsOf<Schema>, context: Roles[R]['context']): Roles[R]['instance'] | Promise<Roles[R]['instance']>;
}

// The `const` type parameter keeps literal choices, so options are typed precisely.
export const defineInput = <const S extends OptionsSchema>(d: Omit<PluginDefinition<'input', S>, 'role'>) =>
  ({ role: 'input', ...d }) as PluginDefinition<'input', S>;
export const defineOutput = <const S extends OptionsSchema>(d: Omit<PluginDefinition<'output', S>, 'role'>) =>
  ({ role: 'output', ...d }) as PluginDefinition<'output', S>;
export const defineFilter = <const S extends OptionsSchema>(d: Omit<PluginDefinition<'filter', S>, 'role'>) =>
  ({ role: 'filter', ...d }) as PluginDefinition<'filter', S>;
export const defineCodec = <const S extends OptionsSchema>(d: Omit<PluginDefinition<'codec', S>, 'role'>) =>
  ({ role: 'codec', ...d }) as PluginDefinition<'codec', S>;

/** Any plugin, its option types erased: what the registry and the CLI handle. */
export type AnyPlugin<R extends Role = Role> = R extends Role ? PluginDefinition<R, OptionsSchema> : never;
