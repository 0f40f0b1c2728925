import { AsyncLocalStorage } from 'node:async_hooks';
import { isUtf8 } from 'node:buffer';
import { inspect } from 'node:util';
import type { FrameProblem, FrameSink } from '../io/framer.js';
import { describe, ERROR_FRAME_LIMIT, frameCopy, PROGRAM, RuntimeError, UsageError, type ErrorRecord } from './errors.js';
import { framePasses, joinLines, planPassThrough, splitLines, type PassThrough } from './passthrough.js';
import type {
  Acknowledge, Codec, Filter, FilterContext, FilterResult, Frame, FrameBatch, Input, InputContext, Message, Output, OutputContext, StreamOptions,
} from './plugin.js';
import { KeyedState, systemClock, type Clock, type Hold, type HoldKeeper } from './state.js';

export interface Counters {
  /** Frames read (empty ones not counted). */
  in: number;
  /** Messages filters made beyond those they were given (a list, flush(), push, a timer). */
  created: number;
  /** Messages handed to the output. */
  out: number;
  /** Messages a filter dropped on purpose (or merged into another). */
  dropped: number;
  /** Records sent to the error output. */
  errors: number;
}

/** What a chain is built from; the output and filters receive their contexts from it. */
export interface ChainParts {
  decoder: Codec;
  encoder: Codec;
  errorOutput: Output;
  output(context: OutputContext): Output | Promise<Output>;
  filters: ReadonlyArray<{ name: string; create(context: FilterContext): Filter | Promise<Filter> }>;
  /** Replaceable in unit tests. */
  clock?: Clock;
  /** Codecs by name, for filters that decode or encode mid-chain. */
  codec?(name: string): Promise<Codec>;
  /** Where warnings go (stderr by default). */
  warn?(line: string): void;
  /** The encoder's and the output's names, for the `stage` of their error records. */
  names?: { encoder: string; output: string };
}

interface NamedFilter {
  name: string;
  filter: Filter;
}

/** One batch's acknowledgement, and how many holds still keep it back. */
class Receipt implements Hold {
  readonly held = true;
  private pending = 1;

  constructor(private readonly acknowledge: Acknowledge) {}

  hold(): void {
    this.pending++;
  }

  release(): void {
    if (--this.pending === 0) this.acknowledge();
  }
}

const FAILED = Symbol('failed');

/**
 * Where the messages of a run came from, for error records: message i is frame
 * `first + i` of `source`, or frame `numbers[i]` once a filter dropped or
 * multiplied some (`numbers` is made only then: most runs go through whole).
 * A message a filter made (push, a timer, flush) has no frame: `first` is NaN
 * and `source` is `filter:NAME`, the filter that made it.
 */
interface Origins {
  source: string;
  first: number;
  numbers: number[] | undefined;
}

const frameNumber = (origins: Origins, i: number): number => (origins.numbers ? origins.numbers[i]! : origins.first + i);

/** start, start + 1, ... : `count` numbers. */
function countFrom(start: number, count: number): number[] {
  const numbers = new Array<number>(count);
  for (let i = 0; i < count; i++) numbers[i] = start + i;
  return numbers;
}

/** The frame numbers of messages [0, count) of a run. */
function frameNumbers(origins: Origins, count: number): number[] {
  return origins.numbers ? origins.numbers.slice(0, count) : countFrom(origins.first, count);
}

/** The `source` of an error record about message i: "stdin:12", or the filter that made it. */
function sourceOf(origins: Origins, i: number): string {
  return Number.isNaN(origins.first) ? origins.source : `${origins.source}:${frameNumber(origins, i)}`;
}

/** Batches handed to the output lately, so that its error records can say where their message came from. */
const RECENT_WRITES = 8;
interface Written {
  frames: readonly Frame[];
  origins: Origins;
}

/**
 * The filter whose code runs now, carried into the timers and callbacks it
 * starts: an exception thrown there (uncaught) is reported as that filter's
 * error record instead of ending the program (see cli/main.ts).
 */
export const filterScope = new AsyncLocalStorage<string | undefined>();

/** Where messages go through: decode, filters in order, encode, output. */
export class Chain implements HoldKeeper {
  readonly counters: Counters = { in: 0, created: 0, out: 0, dropped: 0, errors: 0 };
  /** Aborts when reading must stop: a signal, or an output that is gone. */
  readonly stopping = new AbortController();
  /** True once the output's destination went away (closed pipe). */
  destinationClosed = false;
  /** A failure outside the input's own call stack (a timer's push): reported at the end. */
  failure: unknown;
  readonly clock: Clock;
  private readonly filters: NamedFilter[] = [];
  private output!: Output;
  private plan: PassThrough | undefined;
  /** The step still running, so that pushes from timers keep their place in line. */
  private busy: Promise<void> | undefined;
  private errorBacklog: ErrorRecord[] = [];
  private errorWrite: Promise<void> | undefined;
  /** The receipt of the batch being filtered now, while a filter call runs synchronously. */
  private receipt: Receipt | undefined;
  /** True while a step runs synchronously: releases then wait for that step's delivery. */
  private inStep = false;
  private releases: Receipt[] = [];
  /** Steps started while a step ran synchronously: they run after it. */
  private deferred: Array<() => void | Promise<void>> = [];
  /** The origins of what each filter makes, by filter index. */
  private madeBy: Origins[] = [];
  /** The last RECENT_WRITES batches written, oldest first once full; where the last output error was found. */
  private written: Written[] = [];
  private writtenNext = 0;
  private lastFound: { entry: Written; index: number } | undefined;

  private constructor(private readonly parts: ChainParts) {
    this.clock = parts.clock ?? systemClock;
  }

  /** Creates the output, then the filters, then decides once whether frames may pass through as bytes. */
  static async build(parts: ChainParts): Promise<Chain> {
    const chain = new Chain(parts);
    chain.output = await parts.output(chain.outputContext());
    for (const [index, { name, create }] of parts.filters.entries()) {
      let filter: Filter;
      try {
        filterScope.enterWith(name);
        filter = await create(chain.filterContext(index, name));
      } catch (error) {
        if (error instanceof UsageError || error instanceof RuntimeError) throw error;
        throw new RuntimeError(`filter ${name}: cannot start: ${describe(error)}`);
      }
      chain.filters.push({ name, filter });
      chain.madeBy.push({ source: `filter:${name}`, first: NaN, numbers: undefined });
    }
    filterScope.enterWith(undefined);
    chain.plan = planPassThrough(parts.decoder, parts.encoder, chain.filters.length, chain.output);
    return chain;
  }

  /** The output's own counts for --stats (per endpoint, say), if it keeps any. */
  outputStats(): string | undefined {
    return this.output.stats?.();
  }

  /**
   * The counts as --stats shows them: `out` only what the output handed on,
   * `queued` what it still holds (see Output.queued), and `unfinished` what
   * was read or made and is none of out, queued, dropped or errors yet.
   */
  tally(): Counters & { queued: number; unfinished: number } {
    const { in: read, created, out, dropped, errors } = this.counters;
    const queued = Math.min(out, this.output.queued?.() ?? 0);
    return { in: read, created, out: out - queued, queued, dropped, errors, unfinished: read + created - out - dropped - errors };
  }

  /** Whether frames pass through as bytes (see core/passthrough.ts). */
  get passThrough(): PassThrough | undefined {
    return this.plan;
  }

  readonly reportError = (record: ErrorRecord): void => {
    this.counters.errors++;
    this.errorBacklog.push(record);
    // One write per burst of errors rather than one per record.
    if (this.errorBacklog.length === 1) queueMicrotask(this.flushErrors);
  };

  private readonly flushErrors = (): void => {
    const records = this.errorBacklog;
    if (records.length === 0) return;
    this.errorBacklog = [];
    try {
      const pending = this.parts.errorOutput.write(records.map(errorLine), records);
      if (pending) {
        const previous = this.errorWrite;
        const write: Promise<void> = Promise.all([previous, pending.catch(() => undefined)]).then(() => {
          if (this.errorWrite === write) this.errorWrite = undefined;
        });
        this.errorWrite = write;
      }
    } catch {
      // The error output itself failing must not stop the main chain.
    }
  };

  /** The error output's writes have left its buffers too (a pipe on stderr): records count as out only then. */
  private readonly errorsSettled = (): void | Promise<void> => {
    try {
      return this.parts.errorOutput.settled?.()?.catch(() => undefined);
    } catch {
      // The error output failing must not hold the main chain back.
    }
  };

  private readonly warn = (line: string): void => {
    if (this.parts.warn) this.parts.warn(line);
    else process.stderr.write(`${PROGRAM}: ${line}\n`);
  };

  inputContext(): InputContext {
    return {
      stopping: this.stopping.signal,
      warn: this.warn,
      emit: (batch) => this.serial(() => this.emitBatch(batch)),
      sink: (stream) => this.sink(stream),
      decoder: this.parts.decoder,
      reportError: (record) => {
        // Input-side errors (over-long lines, bad encoding) are frames that came in.
        this.counters.in++;
        this.reportError(record);
      },
    };
  }

  private outputContext(): OutputContext {
    return {
      stopping: this.stopping.signal,
      warn: this.warn,
      reportError: (record) => {
        // The message was counted as out when handed over; it did not get out.
        this.counters.out--;
        this.reportError(this.outputRecord(record));
      },
      destinationClosed: () => {
        this.destinationClosed = true;
        this.stopping.abort();
      },
    };
  }

  private filterContext(index: number, name: string): FilterContext {
    return {
      stopping: this.stopping.signal,
      warn: this.warn,
      // What the filter returns for the message is what --stats counts; the record only says why.
      reportError: (record) => this.reportUncounted({ stage: `filter ${name}`, ...record }),
      clock: this.clock,
      push: (messages) => {
        if (messages === undefined || messages === null || typeof messages === 'function' || typeof messages === 'symbol') {
          this.notAMessage(name, `push() takes a message or a list of them, got ${messages === null ? 'null' : typeof messages}`);
          return;
        }
        const list = Array.isArray(messages) ? (messages as readonly Message[]).slice() : [messages];
        this.counters.created += list.length;
        void this.serial(() => this.within(undefined, () => this.forward(list, this.madeBy[index]!, index + 1)))?.catch(this.fail);
      },
      schedule: (ms, fire) =>
        this.clock.after(ms, () => {
          void this.serial(() => this.within(undefined, () => this.fired(index, name, fire)))?.catch(this.fail);
        }),
      keyed: (options) => new KeyedState(options, this),
      currentHold: () => this.currentHold(),
      codec: (codecName) => {
        if (!this.parts.codec) throw new Error(`no codec ${codecName} here`);
        return this.parts.codec(codecName);
      },
    };
  }

  private readonly fail = (error: unknown): void => {
    this.failure ??= error;
    this.stopping.abort();
  };

  // HoldKeeper: how keyed state (and filters) keep a batch's acknowledgement back.
  currentHold(): Hold | undefined {
    return this.receipt;
  }

  hold(hold: Hold): void {
    (hold as Receipt).hold();
  }

  release(holds: readonly Hold[]): void {
    if (this.inStep) {
      for (const hold of holds) this.releases.push(hold as Receipt);
      return;
    }
    // Outside a step (a timer that dropped what it held): after what is queued now.
    const receipts = holds.slice() as Receipt[];
    void this.serial(() => this.settle(receipts))?.catch(this.fail);
  }

  /** Runs steps one after another, synchronously while nothing waits. */
  private serial(step: () => void | Promise<void>): void | Promise<void> {
    if (this.inStep) {
      // Started from inside a step (a filter pushing as it filters, a clock moved by hand):
      // run at once, it would cut into that step's batch and take its receipt away.
      this.deferred.push(step);
      return;
    }
    if (this.busy) return this.track(this.busy.then(step));
    const result = step();
    return result ? this.track(result) : undefined;
  }

  private track(promise: Promise<void>): Promise<void> {
    this.busy = promise;
    const clear = () => {
      if (this.busy === promise) this.busy = undefined;
    };
    promise.then(clear, clear);
    return promise;
  }

  /**
   * Runs one step (a batch, a push, a timer, a flush) with `receipt` as the
   * batch being filtered; once what it forwarded is delivered, the
   * acknowledgements released meanwhile (its own included) are released.
   */
  private within(receipt: Receipt | undefined, run: () => void | Promise<void>): void | Promise<void> {
    this.receipt = receipt;
    this.inStep = true;
    let result: void | Promise<void> = undefined;
    try {
      result = run();
    } finally {
      this.inStep = false;
      if (!result) this.receipt = undefined;
    }
    // While the step waits (a filter's promise), its batch stays the one being filtered:
    // steps run one at a time, and what later filters store must hold it.
    if (result) result = result.finally(() => (this.receipt = undefined));
    if (receipt) this.releases.push(receipt);
    if (this.releases.length > 0) {
      const releases = this.releases;
      this.releases = [];
      result = result ? result.then(() => this.settle(releases)) : this.settle(releases);
    }
    return this.deferred.length > 0 ? this.runDeferred(result) : result;
  }

  /** The steps started from inside the one that gave `result`, one after another after it. */
  private runDeferred(result: void | Promise<void>): void | Promise<void> {
    const steps = this.deferred;
    this.deferred = [];
    for (const step of steps) {
      const run = (): void | Promise<void> => {
        try {
          return step()?.catch(this.fail);
        } catch (error) {
          this.fail(error);
        }
      };
      result = result ? result.then(run) : run();
    }
    return result;
  }

  /** Releases `receipts` once the output and the error output have let go of what was written. */
  private settle(receipts: readonly Receipt[]): void | Promise<void> {
    const written = this.output.settled?.();
    this.flushErrors();
    const errors = this.errorWrite ? this.errorWrite.then(this.errorsSettled) : this.errorsSettled();
    if (!written && !errors) {
      for (const receipt of receipts) receipt.release();
      return;
    }
    return Promise.all([written, errors]).then(() => {
      for (const receipt of receipts) receipt.release();
    });
  }

  /** A framer's way in: frames to decode, or lines that pass through as bytes. */
  private sink(stream: StreamOptions): FrameSink {
    const { source, annotate, acknowledge } = stream;
    // Raw bytes cannot carry where each message came from: annotating turns pass-through off.
    const plan = annotate ? undefined : this.plan;
    const ack = (end: number): Acknowledge | undefined => acknowledge?.(end);
    return {
      form: plan ? 'text' : this.parts.decoder.form,
      frames: (frames, first, end) => this.serial(() => this.emitBatch({ frames, source, first, annotate, ack: ack(end) })),
      problem: (problem) => this.inputProblem(source, problem),
      lines: plan ? (bytes, count, end) => this.serial(() => this.passLines(bytes, count, ack(end))) : undefined,
      passes: plan?.passes,
    };
  }

  private inputProblem(source: string, problem: FrameProblem): void {
    this.counters.in++;
    this.reportError({ error: problem.kind, reason: problem.reason, source: `${source}:${problem.number}`, ...frameCopy(problem.bytes) });
  }

  /** `count` LF-terminated lines that pass through as they are. */
  private passLines(bytes: Buffer, count: number, ack: Acknowledge | undefined): void | Promise<void> {
    if (this.destinationClosed) return;
    this.counters.in += count;
    this.counters.out += count;
    const receipt = ack ? new Receipt(ack) : undefined;
    return this.within(receipt, () =>
      this.plan!.to === 'lines' ? this.output.writeLines!(bytes, count) : this.writeFrames(splitLines(bytes)),
    );
  }

  private writeFrames(frames: Frame[]): void | Promise<void> {
    return this.output.write(frames, frames);
  }

  private emitBatch(batch: FrameBatch): void | Promise<void> {
    // Once the output is gone (`| head` quit), what is still read, such as the cut
    // last line the input hands over as it stops, has nowhere to go: end quietly.
    if (this.destinationClosed) return;
    const receipt = batch.ack ? new Receipt(batch.ack) : undefined;
    return this.within(receipt, () => {
      const { frames } = batch;
      if (this.plan && !batch.annotate && frames.length > 0 && typeof frames[0] !== 'string') {
        return this.passRuns(batch, frames as readonly Buffer[], 0);
      }
      return this.forward(...this.decode(batch, 0, frames.length), 0);
    });
  }

  /**
   * Frames of one batch in order: runs that pass go on as bytes, the others
   * are decoded. `from` is where this run starts.
   */
  private passRuns(batch: FrameBatch, frames: readonly Buffer[], from: number): void | Promise<void> {
    const plan = this.plan!;
    let runStart = from;
    let runPasses = framePasses(plan, frames[from]!);
    for (let i = from + 1; i <= frames.length; i++) {
      if (i < frames.length && framePasses(plan, frames[i]!) === runPasses) continue;
      let wait: void | Promise<void>;
      if (runPasses) {
        const count = i - runStart;
        this.counters.in += count;
        this.counters.out += count;
        if (plan.to === 'lines') wait = this.output.writeLines!(joinLines(frames, runStart, i), count);
        else {
          const run = frames.slice(runStart, i);
          this.wrote(run, { source: batch.source, first: batch.first + runStart, numbers: undefined });
          wait = this.writeFrames(run);
        }
      } else {
        wait = this.forward(...this.decode(batch, runStart, i), 0);
      }
      if (i === frames.length) return wait;
      if (wait) {
        const next = i;
        return wait.then(() => this.passRuns(batch, frames, next));
      }
      runStart = i;
      runPasses = !runPasses;
    }
  }

  /** Decodes frames[from, to) of a batch; frames that do not decode become error records. */
  private decode(batch: FrameBatch, from: number, to: number): [Message[], Origins] {
    const { frames, source, first, annotate } = batch;
    const { decoder } = this.parts;
    const text = decoder.form === 'text';
    const messages: Message[] = [];
    // The frame numbers of the messages, listed only from the first frame skipped.
    let numbers: number[] | undefined;
    for (let i = from; i < to; i++) {
      let frame = frames[i]!;
      if (frame.length === 0) {
        numbers ??= countFrom(first + from, messages.length);
        continue;
      }
      this.counters.in++;
      if (text && typeof frame !== 'string') {
        const decoded = utf8(frame);
        if (decoded === undefined) {
          this.reportError({ error: 'encoding', reason: 'frame is not valid UTF-8', source: `${source}:${first + i}`, ...frameCopy(frame) });
          numbers ??= countFrom(first + from, messages.length);
          continue;
        }
        frame = decoded;
      } else if (!text && typeof frame === 'string') {
        frame = Buffer.from(frame);
      }
      try {
        const message = decoder.decode(frame);
        if (annotate && typeof message === 'object' && message !== null && !Array.isArray(message)) {
          annotate(message as Record<string, unknown>, first + i);
        }
        messages.push(message);
        if (numbers !== undefined) numbers.push(first + i);
      } catch (error) {
        this.reportError({ error: 'decode', reason: describe(error), source: `${source}:${first + i}`, ...frameCopy(frame) });
        numbers ??= countFrom(first + from, messages.length);
      }
    }
    return [messages, { source, first: first + from, numbers }];
  }

  /** Sends `messages` through the filters from `from` on, then to the output. */
  private forward(messages: Message[], origins: Origins, from: number): void | Promise<void> {
    for (let i = from; i < this.filters.length; i++) {
      if (messages.length === 0) return;
      const result = this.applyFilter(i, messages, origins);
      if (result instanceof Promise) return result.then(([next, nextOrigins]) => this.forward(next, nextOrigins, i + 1));
      [messages, origins] = result;
    }
    return this.deliver(messages, origins);
  }

  private applyFilter(index: number, messages: Message[], origins: Origins): [Message[], Origins] | Promise<[Message[], Origins]> {
    const { name, filter } = this.filters[index]!;
    const results: Array<FilterResult | Promise<FilterResult> | typeof FAILED> = new Array(messages.length);
    let waiting = false;
    filterScope.enterWith(name);
    for (let i = 0; i < messages.length; i++) {
      try {
        const result = filter.filter(messages[i]);
        if (result instanceof Promise) {
          waiting = true;
          results[i] = result.catch((error: unknown) => this.filterFailed(index, messages[i], error, sourceOf(origins, i)));
        } else {
          results[i] = result;
        }
      } catch (error) {
        results[i] = this.filterFailed(index, messages[i], error, sourceOf(origins, i));
      }
    }
    filterScope.enterWith(undefined);
    // Awaiting the batch as a whole keeps order while async filters run concurrently.
    if (waiting) return Promise.all(results).then((settled) => this.collect(settled, origins));
    return this.collect(results as Array<FilterResult | typeof FAILED>, origins);
  }

  private filterFailed(index: number, message: Message, error: unknown, source: string): typeof FAILED {
    const { name } = this.filters[index]!;
    this.reportError({ error: 'filter', reason: describe(error), source, stage: `filter ${name}`, ...frameCopy(readable(message)) });
    return FAILED;
  }

  /**
   * One result per message given: lists are spread, nothing is a drop, extra
   * messages count as created. Each message out keeps the origin of the one it
   * came from; frame numbers are listed only from the first result that is not
   * one message. Measured with test/bench/chain.mjs (decode, Null, encode): 0 to
   * 3% more CPU than without origins, within what the shared machine varies.
   */
  private collect(results: ReadonlyArray<FilterResult | typeof FAILED>, origins: Origins): [Message[], Origins] {
    const out: Message[] = [];
    let numbers: number[] | undefined;
    for (let i = 0; i < results.length; i++) {
      const result = results[i];
      if (result !== FAILED && result !== undefined && result !== null && !Array.isArray(result)) {
        out.push(result);
        numbers?.push(frameNumber(origins, i));
        continue;
      }
      numbers ??= frameNumbers(origins, i);
      if (result === FAILED) continue;
      if (result === undefined || result === null) {
        this.counters.dropped++;
        continue;
      }
      const list = result as readonly Message[];
      if (list.length === 0) this.counters.dropped++;
      else this.counters.created += list.length - 1;
      const number = frameNumber(origins, i);
      for (const m of list) {
        out.push(m);
        numbers.push(number);
      }
    }
    return [out, numbers ? { source: origins.source, first: origins.first, numbers } : origins];
  }

  /** What a filter makes on its own (a timer, flush): every message counts as created. */
  private created(result: FilterResult): Message[] {
    if (result === undefined || result === null) return [];
    const list = Array.isArray(result) ? (result as Message[]).slice() : [result];
    this.counters.created += list.length;
    return list;
  }

  private fired(index: number, name: string, fire: () => FilterResult): void | Promise<void> {
    let result: FilterResult;
    try {
      filterScope.enterWith(name);
      result = fire();
    } catch (error) {
      this.filterThrew(name, error);
      return;
    } finally {
      filterScope.enterWith(undefined);
    }
    return this.forward(this.created(result), this.madeBy[index]!, index + 1);
  }

  /** An exception from a filter's own timer or callback: a record naming the filter; the chain goes on. */
  filterThrew(name: string, error: unknown): void {
    this.notAMessage(name, `in a timer or callback: ${describe(error)}`);
  }

  /** A record about what filter `name` did outside its messages: no message is lost, so it does not count as one. */
  private notAMessage(name: string, reason: string): void {
    this.reportUncounted({ error: 'filter', reason, source: `filter:${name}`, stage: `filter ${name}` });
  }

  /** A record that stands for no message of its own, so not counted in --stats. */
  private reportUncounted(record: ErrorRecord): void {
    this.counters.errors--;
    this.reportError(record);
  }

  private deliver(messages: Message[], origins: Origins): void | Promise<void> {
    if (messages.length === 0) return;
    const { encoder } = this.parts;
    const frames: Frame[] = new Array(messages.length);
    let kept: Message[] | undefined;
    let keptNumbers: number[] | undefined;
    for (let i = 0; i < messages.length; i++) {
      let frame: Frame | undefined;
      try {
        frame = encoder.encode(messages[i]);
        if (typeof frame !== 'string' && !Buffer.isBuffer(frame)) throw new Error(`cannot encode a value of type ${typeof messages[i]}`);
      } catch (error) {
        const stage = `encoder ${this.parts.names?.encoder ?? ''}`.trimEnd();
        this.reportError({ error: 'encode', reason: describe(error), source: sourceOf(origins, i), stage, ...frameCopy(readable(messages[i])) });
        kept ??= messages.slice(0, i);
        keptNumbers ??= frameNumbers(origins, i);
        continue;
      }
      if (kept) {
        frames[kept.length] = frame;
        kept.push(messages[i]);
        keptNumbers!.push(frameNumber(origins, i));
      } else frames[i] = frame;
    }
    if (kept) frames.length = kept.length;
    if (frames.length === 0) return;
    this.counters.out += frames.length;
    this.wrote(frames, keptNumbers ? { source: origins.source, first: origins.first, numbers: keptNumbers } : origins);
    return this.output.write(frames, kept ?? messages);
  }

  /** Keeps the last batches written, for outputRecord. */
  private wrote(frames: readonly Frame[], origins: Origins): void {
    this.written[this.writtenNext] = { frames, origins };
    this.writtenNext = (this.writtenNext + 1) % RECENT_WRITES;
  }

  /**
   * An output's error record, with the origin of its message when its frame is
   * one of the last batches written (a server that refuses a row much later
   * keeps the output's own source), and the stage. Records usually come in
   * order: the search starts after the last one found.
   */
  private outputRecord(record: ErrorRecord): ErrorRecord {
    const { error, reason, source, ...rest } = record;
    const stage = `output ${this.parts.names?.output ?? ''}`.trimEnd();
    let origin: string | undefined;
    if (record.frame !== undefined) {
      const entries = [...this.written.slice(this.writtenNext), ...this.written.slice(0, this.writtenNext)];
      const last = this.lastFound;
      const start = last ? Math.max(0, entries.indexOf(last.entry)) : 0;
      search: for (let k = 0; k < entries.length; k++) {
        const entry = entries[(start + k) % entries.length]!;
        const from = k === 0 && last?.entry === entry ? last.index + 1 : 0;
        for (let i = from; i < entry.frames.length; i++) {
          if (!sameFrame(entry.frames[i]!, record)) continue;
          this.lastFound = { entry, index: i };
          origin = sourceOf(entry.origins, i);
          break search;
        }
      }
    }
    return { error, reason, source: origin ?? source, stage, ...rest };
  }

  /**
   * Reads the input to its end (or until stopped), then drains: flushes each
   * filter in order, closes the output, writes the last error records, and
   * lets the input save what was acknowledged.
   */
  async run(input: Input): Promise<void> {
    let failure: unknown;
    try {
      await input.run();
    } catch (error) {
      failure = error;
    }
    try {
      await this.busy;
      // A filter whose flush fails still lets the next ones give back what they hold.
      for (let i = 0; i < this.filters.length && !this.destinationClosed; i++) {
        const { name, filter } = this.filters[i]!;
        if (!filter.flush) continue;
        await (async () => this.serial(() =>
          this.within(undefined, () => {
            let flushed: FilterResult | Promise<FilterResult>;
            try {
              filterScope.enterWith(name);
              flushed = filter.flush!();
            } catch (error) {
              throw new RuntimeError(`filter ${name}: flush failed: ${describe(error)}`);
            } finally {
              filterScope.enterWith(undefined);
            }
            if (flushed instanceof Promise) {
              return flushed.then(
                (rest) => this.forward(this.created(rest), this.madeBy[i]!, i + 1),
                (error: unknown) => {
                  throw new RuntimeError(`filter ${name}: flush failed: ${describe(error)}`);
                },
              );
            }
            return this.forward(this.created(flushed), this.madeBy[i]!, i + 1);
          }),
        ))().catch((error: unknown) => {
          failure ??= error;
        });
      }
      // A step that failed was reported where it was awaited.
      await this.busy?.catch(() => undefined);
      for (const { name, filter } of this.filters) {
        try {
          await filter.close?.();
        } catch (error) {
          failure ??= new RuntimeError(`filter ${name}: close failed: ${describe(error)}`);
        }
      }
    } catch (error) {
      failure ??= error;
    }
    try {
      await this.output.close();
    } catch (error) {
      failure ??= error;
    }
    this.flushErrors();
    await this.errorWrite;
    await this.parts.errorOutput.close().catch(() => undefined);
    try {
      await input.close?.();
    } catch (error) {
      failure ??= error;
    }
    failure ??= this.failure;
    if (failure !== undefined) throw failure;
  }
}

function errorLine(record: ErrorRecord): string {
  return JSON.stringify(record);
}

/** Whether `record` copies `frame` (frameCopy cuts a long one). */
function sameFrame(frame: Frame, record: ErrorRecord): boolean {
  if (typeof frame === 'string') {
    if (record.encoding !== undefined) return false;
    return frame.length <= ERROR_FRAME_LIMIT ? frame === record.frame : frame.startsWith(record.frame!) && record.frame!.length === ERROR_FRAME_LIMIT;
  }
  const copy = frameCopy(frame);
  return copy.frame === record.frame && copy.encoding === record.encoding;
}

/** Text of a frame, or undefined when it is not UTF-8. */
function utf8(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  // Decoding replaces invalid bytes with U+FFFD; only then is a full check needed.
  return !text.includes('\uFFFD') || isUtf8(bytes) ? text : undefined;
}

/** A copy of a message a person can read in an error record, whatever it holds (BigInt, cycles). */
function readable(message: Message): string {
  if (typeof message === 'string') return message;
  try {
    const json = JSON.stringify(message);
    if (json !== undefined) return json;
  } catch {
    // BigInt or a cycle: inspect says what is there.
  }
  return inspect(message, { depth: 6, breakLength: Infinity, maxStringLength: 2048 });
}
