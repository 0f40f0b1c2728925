import type { ErrorRecord } from './errors.js';
import type { OptionsOf, OptionsSchema } from './options.js';

/** A decoded message: whatever the decoder made of a frame (usually an object). */
export type Message = unknown;

/** What a filter may return: one message, none (drop), or a list (each goes on). */
export type FilterResult = Message | readonly Message[] | null | undefined;

/** Frames an input hands to the chain, in order. */
export interface FrameBatch {
  /** One entry per line or per ZeroMQ message; '' stands for an empty line and is skipped. */
  frames: string[];
  /** Where they came from, for error records: 'stdin', 'file:/var/log/app.log', 'zeromq'. */
  source: string;
  /** Line or frame number of frames[0] (1-based). */
  first: number;
  /** Called on each decoded object message with its line or frame number: how an input says where a message came from. */
  annotate?: (message: Record<string, unknown>, number: number) => void;
}

/** What every plugin is handed: where errors go, and when to stop. */
interface PluginContext {
  /** Sends one record to the error output; the chain goes on. */
  reportError(record: ErrorRecord): void;
  /** Aborts when the program must stop (signal, closed output): inputs stop reading, waits give up. */
  readonly stopping: AbortSignal;
}

export interface InputContext extends PluginContext {
  /**
   * True when nothing looks inside messages (no filters, and Null codecs or the
   * same JSON codec on both sides): a line input then hands over raw bytes with
   * `emitRaw` instead of `emit`.
   */
  readonly raw: boolean;
  /**
   * With `raw` and the JSON codecs: only lines this accepts (already in the form
   * the encoder writes) go as bytes; others are emitted as frames, to be decoded.
   */
  readonly verbatim?: (bytes: Uint8Array, start: number, end: number) => boolean;
  /** Resolves when the chain can take more: await it, that is the backpressure. */
  emit(batch: FrameBatch): void | Promise<void>;
  /**
   * Complete LF-terminated lines, already cleaned (no CR, no empty lines), `count` of them.
   * Once it returns, or its promise resolves, the input may read into `bytes` again.
   */
  emitRaw(bytes: Buffer, count: number): void | Promise<void>;
}

export interface Input {
  /** Reads until the input ends or `stopping` aborts; returns once everything read was emitted. */
  run(): Promise<void>;
}

export interface OutputContext extends PluginContext {
  /** The destination is gone for good (closed pipe): stop quietly, exit 0. */
  destinationClosed(): void;
}

export interface Output {
  /** Encoded frames, and the messages they came from (same order). Await it: backpressure. */
  write(frames: string[], messages: readonly Message[]): void | Promise<void>;
  /**
   * Present on line outputs that can take raw LF-terminated bytes as they are.
   * `bytes` may be overwritten once it returns, or its promise resolves: copy to keep them longer.
   */
  writeRaw?(bytes: Buffer, count: number): void | Promise<void>;
  /** Delivers whatever is queued, then releases resources. Throws RuntimeError on loss. */
  close(): Promise<void>;
}

export interface FilterContext extends PluginContext {
  /** Sends messages on from this filter at any time (timers, windows); order with the stream is kept. */
  push(messages: readonly Message[]): void;
}

export interface Filter {
  filter(message: Message): FilterResult | Promise<FilterResult>;
  /** Called once at the end; what it returns goes on down the chain. */
  flush?(): FilterResult | Promise<FilterResult>;
  close?(): void | Promise<void>;
}

export interface Codec {
  decode(frame: string): Message;
  encode(message: Message): string;
  /** The message is the frame's text unchanged: raw bytes may pass through. */
  readonly raw?: boolean;
  /**
   * True when this codec's encode(decode(frame)) gives bytes[start, end) back
   * unchanged (it may say false when unsure): with this codec on both sides and
   * no filters, such lines pass through as bytes. The same function on both sides.
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
