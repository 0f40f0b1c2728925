import { isUtf8 } from 'node:buffer';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { frameCopy } from '../core/errors.js';
import type { FrameBatch, InputContext } from '../core/plugin.js';
import type { OptionSpec } from '../core/options.js';

const LF = 10;
const CR = 13;
const LFLF = Buffer.from('\n\n');
const CRLF = Buffer.from('\r\n');

/** The option every line input shares, so one huge line cannot eat memory. */
export const maxLineLengthOption = {
  type: 'integer',
  min: 1,
  default: 1_048_576,
  description: 'Longest line accepted, in bytes; a longer line goes to the error output as an over-long record.',
} as const satisfies OptionSpec;

/**
 * Cuts a byte stream into lines (LF ends a line, a CR before it is removed, a
 * last line without LF still counts) and hands them to the chain in one batch
 * per chunk. Works on bytes; strings are made once per chunk, not per line.
 */
export class LineFramer {
  /** Bytes of a line whose LF has not arrived yet. */
  private pending: Buffer | undefined;
  /** Number of the next line to start (1-based). */
  private line = 1;
  /** True while discarding the rest of an over-long line. */
  private skipping = false;
  /** Where raw lines that had to be cleaned are copied together (frameUnclean). */
  private scratch = Buffer.alloc(0);

  constructor(
    private readonly context: InputContext,
    private readonly source: string,
    private readonly maxLineLength: number,
    /** Adds where each message came from; raw bytes cannot carry that, so it turns pass-through off. */
    private readonly annotate?: FrameBatch['annotate'],
  ) {}

  private get raw(): boolean {
    return this.context.raw && !this.annotate;
  }

  /** Frames every complete line in `chunk`; resolves when the chain can take more. */
  push(chunk: Buffer): void | Promise<void> {
    const data = this.pending ? join(this.pending, chunk) : chunk;
    const lastLF = data.lastIndexOf(LF);
    if (lastLF < 0) {
      this.hold(data);
      return;
    }
    this.pending = undefined;
    let start = 0;
    if (this.skipping) {
      // The first line here is the tail of an over-long line already reported.
      start = data.indexOf(LF) + 1;
      this.skipping = false;
      this.line++;
    }
    const wait = start <= lastLF ? this.frame(data.subarray(start, lastLF + 1)) : undefined;
    // Held only after framing: an over-long rest must not be taken for the tail of an
    // earlier long line, and its line number comes after the lines framed here.
    if (lastLF + 1 < data.length) this.hold(data.subarray(lastLF + 1));
    return wait;
  }

  /** How much a reader should read at a time: large for raw bytes, small when lines become strings. */
  get readSize(): number {
    // JSON lines that are not verbatim are decoded: the smaller size keeps the heap small.
    return this.raw && !this.context.verbatim ? RAW_READ : TEXT_READ;
  }

  /** Bytes held of a line whose LF has not come yet. */
  get held(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Copies the held bytes to the start of `buffer` and holds them from there, so
   * a reader that reads on right after them hands over chunks that continue them
   * in memory, and `push` needs no copy. Returns how many bytes were moved.
   */
  moveHeldTo(buffer: Buffer): number {
    const held = this.pending;
    if (!held) return 0;
    held.copy(buffer);
    this.pending = buffer.subarray(0, held.length);
    return held.length;
  }

  /** The input is over: a last line without LF still counts. */
  end(): void | Promise<void> {
    const rest = this.pending;
    this.pending = undefined;
    if (!rest || this.skipping) return;
    const withLF = Buffer.allocUnsafe(rest.length + 1);
    rest.copy(withLF);
    withLF[rest.length] = LF;
    return this.frame(withLF);
  }

  private hold(bytes: Buffer): void {
    if (this.skipping) {
      this.pending = undefined;
      return;
    }
    if (bytes.length > this.maxLineLength) {
      this.overLong(bytes, this.line);
      this.pending = undefined;
      this.skipping = true;
    } else {
      this.pending = bytes;
    }
  }

  private overLong(bytes: Uint8Array, line: number): void {
    this.context.reportError({
      error: 'over-long',
      reason: `line longer than max_line_length (${this.maxLineLength} bytes)`,
      source: `${this.source}:${line}`,
      ...frameCopy(bytes.subarray(0, 4096)),
    });
  }

  /** `lines` holds whole lines, each ending in LF. */
  private frame(lines: Buffer): void | Promise<void> {
    if (this.raw) return this.frameRaw(lines);
    return this.frameText(lines, 0);
  }

  /**
   * Decodes `lines` from byte `from` on, in batches of about TEXT_BATCH bytes:
   * the strings and messages of a batch stay small enough for V8's young
   * generation, where they die cheaply (a 1 MiB string would go straight to the
   * old generation and live until a full collection).
   */
  private frameText(lines: Buffer, from: number): void | Promise<void> {
    while (from < lines.length) {
      let to = lines.length;
      if (to - from > TEXT_BATCH) {
        to = lines.lastIndexOf(LF, from + TEXT_BATCH - 1) + 1;
        if (to <= from) to = lines.indexOf(LF, from + TEXT_BATCH) + 1;
      }
      const wait = this.frameBatch(to - from === lines.length ? lines : lines.subarray(from, to));
      from = to;
      if (wait) return from < lines.length ? wait.then(() => this.frameText(lines, from)) : wait;
    }
  }

  private frameBatch(lines: Buffer): void | Promise<void> {
    const first = this.line;
    if (lines.length <= this.maxLineLength && isUtf8(lines)) {
      // The common case: one decode and one split for the whole chunk.
      const frames = lines.toString('utf8', 0, lines.length - 1).split('\n');
      this.line += frames.length;
      if (lines.includes(CR)) {
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i]!;
          if (f.charCodeAt(f.length - 1) === 13) frames[i] = f.slice(0, -1);
        }
      }
      return this.context.emit({ frames, source: this.source, first, annotate: this.annotate });
    }
    const frames: string[] = [];
    this.eachLine(lines, (start, end, number) => {
      const bytes = lines.subarray(start, end);
      if (end - start > this.maxLineLength) {
        this.overLong(bytes, number);
        frames.push('');
      } else if (!isUtf8(bytes)) {
        this.context.reportError({
          error: 'encoding',
          reason: 'line is not valid UTF-8',
          source: `${this.source}:${number}`,
          ...frameCopy(bytes),
        });
        frames.push('');
      } else {
        frames.push(bytes.toString('utf8'));
      }
    });
    return this.context.emit({ frames, source: this.source, first, annotate: this.annotate });
  }

  /** Raw pass-through: hand the bytes on untouched when they are already clean. */
  private frameRaw(lines: Buffer): void | Promise<void> {
    const { verbatim } = this.context;
    // JSON lines that are not valid UTF-8 are decoded the normal way, which reports them.
    if (verbatim && !isUtf8(lines)) return this.frameText(lines, 0);
    // Clean when no line is empty, ends in CR or is too long: the bytes then go on
    // as they are. A native search each for CR LF and LF LF, one per line to count.
    if (lines[0] !== LF && lines.indexOf(LFLF) < 0 && lines.indexOf(CRLF) < 0) {
      const max = this.maxLineLength;
      let count = 0;
      let start = 0;
      for (let at = lines.indexOf(LF); at >= 0; at = lines.indexOf(LF, start)) {
        if (at - start > max) return this.frameUnclean(lines);
        if (verbatim && !verbatim(lines, start, at)) {
          this.line += count;
          return this.passThen(lines.subarray(0, start), count, lines, start);
        }
        count++;
        start = at + 1;
      }
      this.line += count;
      return this.context.emitRaw(lines, count);
    }
    return this.frameUnclean(lines);
  }

  /**
   * Raw pass-through of lines some of which are empty, end in CR or are too
   * long: the others are copied together, without their CR, into a buffer of the
   * framer's own, reused once the chain is done with it (see InputContext.emitRaw).
   */
  private frameUnclean(lines: Buffer): void | Promise<void> {
    const { verbatim } = this.context;
    const max = this.maxLineLength;
    if (this.scratch.length < lines.length) this.scratch = Buffer.allocUnsafeSlow(Math.max(lines.length, this.scratch.length * 2));
    const out = this.scratch;
    let used = 0;
    let kept = 0;
    let start = 0;
    for (let at = lines.indexOf(LF); at >= 0; at = lines.indexOf(LF, start)) {
      const end = at > start && lines[at - 1] === CR ? at - 1 : at;
      if (end - start > max || (verbatim && end > start && !verbatim(lines, start, end))) {
        // JSON lines: from this one on, decoded and encoded (over-long ones reported there).
        if (verbatim) return this.passThen(out.subarray(0, used), kept, lines, start);
        this.overLong(lines.subarray(start, end), this.line);
      } else if (end > start) {
        lines.copy(out, used, start, end);
        used += end - start;
        out[used++] = LF;
        kept++;
      }
      this.line++;
      start = at + 1;
    }
    if (kept === 0) return;
    return this.context.emitRaw(out.subarray(0, used), kept);
  }

  /** `count` lines as bytes, then `lines` from byte `rest` on decoded the normal way. */
  private passThen(bytes: Buffer, count: number, lines: Buffer, rest: number): void | Promise<void> {
    if (count === 0) return this.frameText(lines, rest);
    const wait = this.context.emitRaw(bytes, count);
    return wait ? wait.then(() => this.frameText(lines, rest)) : this.frameText(lines, rest);
  }

  /** Calls `each(start, end, lineNumber)` per line, `end` excluding LF and a CR before it. */
  private eachLine(lines: Buffer, each: (start: number, end: number, number: number) => void): void {
    let start = 0;
    for (let at = lines.indexOf(LF); at >= 0; at = lines.indexOf(LF, start)) {
      const end = at > start && lines[at - 1] === CR ? at - 1 : at;
      each(start, end, this.line++);
      start = at + 1;
    }
  }
}

/** `a` then `b`: a view when `b` continues `a` in memory (see moveHeldTo), else a copy. */
function join(a: Buffer, b: Buffer): Buffer {
  if (a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset) {
    return Buffer.from(a.buffer, a.byteOffset, a.length + b.length);
  }
  return Buffer.concat([a, b], a.length + b.length);
}

/** Raw pass-through reads this much at a time: fewer, larger writes. */
const RAW_READ = 1 << 20;
/**
 * Lines decoded to strings are read this much at a time: the strings and messages
 * of one read stay small enough to die young (measured: 1 MiB reads doubled the heap).
 */
const TEXT_READ = 64 << 10;
/** Lines are decoded to strings in batches of about this many bytes (see frameText). */
const TEXT_BATCH = 64 << 10;
/** Bytes read and handled without a turn of the event loop at most (signals wait for one). */
const YIELD_EVERY = 256 << 10;

/**
 * Feeds descriptor `fd` through a framer until it ends or `stopping` aborts.
 *
 * A regular file is read with readSync (a file read never waits for long), each
 * read landing right after the previous one in memory, so the framer never copies
 * a chunk to join a line cut in two.
 *
 * A pipe is read the same way, without blocking, through a second, non-blocking
 * descriptor of the same pipe (/proc/self/fd, Linux) for as long as data is
 * there: `echo '{}' | message-passing` then ends without loading Node's stream
 * and net modules (measured: 7 ms of start-up). Once the pipe would make it
 * wait, and for anything else (socket, terminal), the stream that `stream()`
 * returns takes over: a blocking read could wait forever in Node's thread pool,
 * where no signal could end it.
 */
export async function readDescriptor(fd: number, framer: LineFramer, stopping: AbortSignal, stream: () => Readable): Promise<void> {
  const stat = fstatSync(fd);
  // Linux's memory devices (major 1: /dev/null, /dev/zero, /dev/urandom) never make a read wait either.
  if (stat.isFile() || (stat.isCharacterDevice() && ((stat.rdev >> 8) & 0xfff) === 1)) {
    await readSynchronously(fd, framer, stopping, true);
    return;
  }
  if (stat.isFIFO()) {
    let pipe: number | undefined;
    try {
      pipe = openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      // Not Linux, or no /proc: the stream reads it all.
    }
    if (pipe !== undefined) {
      let ended: boolean;
      try {
        ended = await readSynchronously(pipe, framer, stopping, false);
      } finally {
        closeSync(pipe);
      }
      if (ended) return;
    }
  }
  return readLines(stream(), framer, stopping);
}

/**
 * Reads `fd` with readSync into one buffer, read into again and again: fresh
 * memory costs a page fault per 4 KiB (measured: 20% of a raw pass-through). Once
 * `push` returned or its promise resolved, nothing refers to a chunk any more
 * (see InputContext.emitRaw), except held bytes, which are moved to the start
 * before the buffer is reused. Returns false when a non-blocking descriptor has
 * nothing yet (EAGAIN), true once the input ended (or stopped) and was drained.
 */
async function readSynchronously(fd: number, framer: LineFramer, stopping: AbortSignal, file: boolean): Promise<boolean> {
  const size = framer.readSize;
  let buffer = Buffer.allocUnsafeSlow(2 * size);
  let used = 0;
  let unyielded = 0;
  // Once stopped, the line cut by the last read of a file is still read to its
  // end: it is in the file, and framing half of it would report a bogus error.
  while (!stopping.aborted || (file && framer.held > 0)) {
    if (buffer.length - used < size) {
      if (framer.held + size > buffer.length) buffer = Buffer.allocUnsafeSlow(framer.held + 2 * size);
      used = framer.moveHeldTo(buffer);
    }
    let count: number;
    try {
      count = readSync(fd, buffer, used, size, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return false;
      throw error;
    }
    if (count === 0) break;
    const wait = framer.push(buffer.subarray(used, used + count));
    used += count;
    if (wait) await wait;
    else if ((unyielded += count) >= YIELD_EVERY) {
      // Everything went synchronously so far: let signals, timers (--stats) and
      // V8's collection tasks in (measured: without them the heap grows to twice the size).
      unyielded = 0;
      await new Promise(setImmediate);
    }
  }
  const wait = framer.end();
  if (wait) await wait;
  return true;
}

/**
 * Feeds a readable stream through a framer until it ends or `stopping` aborts.
 * Events rather than an async iterator: one promise per chunk only when the
 * chain makes the input wait.
 */
export async function readLines(stream: Readable, framer: LineFramer, stopping: AbortSignal): Promise<void> {
  if (!stopping.aborted) {
    await new Promise<void>((resolve, reject) => {
      let waiting: Promise<void> | undefined;
      const finish = (error?: unknown) => {
        // A late error (the stream being torn down) has nobody left to tell.
        stream.off('data', onData).off('end', onEnd).off('error', onError).on('error', () => undefined);
        stopping.removeEventListener('abort', onAbort);
        // What is framed already goes on before the end, in order.
        Promise.resolve(waiting).then(() => (error === undefined ? resolve() : reject(error)), reject);
      };
      // The part of a line cut by the last chunk and the next chunk are joined in a
      // buffer read into again, not a new one each time: a pipe read slowly left
      // dead 64 KiB buffers that a small heap seldom collects (RSS crept up).
      let joined: Buffer | undefined;
      const onData = (chunk: Buffer) => {
        let wait: void | Promise<void>;
        try {
          if (framer.held > 0) {
            const size = framer.held + chunk.length;
            if (!joined || joined.length < size) joined = Buffer.allocUnsafeSlow(Math.max(size, 2 * (joined?.length ?? 64 << 10)));
            const held = framer.moveHeldTo(joined);
            chunk.copy(joined, held);
            chunk = joined.subarray(held, size);
          }
          wait = framer.push(chunk);
        } catch (error) {
          stream.pause();
          return finish(error);
        }
        if (!wait) return;
        stream.pause();
        waiting = wait.then(
          () => {
            waiting = undefined;
            if (!stopping.aborted) stream.resume();
          },
          (error: unknown) => {
            waiting = undefined;
            finish(error);
          },
        );
      };
      const onEnd = () => finish();
      const onError = (error: unknown) => finish(stopping.aborted ? undefined : error);
      const onAbort = () => {
        stream.pause();
        finish();
        stream.destroy();
      };
      stream.on('data', onData).on('end', onEnd).on('error', onError);
      stopping.addEventListener('abort', onAbort, { once: true });
    });
  }
  const wait = framer.end();
  if (wait) await wait;
}
