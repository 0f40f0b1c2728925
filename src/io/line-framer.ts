import { isUtf8 } from 'node:buffer';
import type { FrameSink, Framer } from './framer.js';

const LF = 10;
const CR = 13;
const LFLF = Buffer.from('\n\n');
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * Cuts a byte stream into lines (LF ends a line, a CR before it is removed, a
 * last line without LF still counts) and hands them to the chain in one batch
 * per chunk. Works on bytes; strings are made once per chunk, not per line.
 */
export class LineFramer implements Framer {
  /** Bytes of a line whose LF has not arrived yet. */
  private pending: Buffer | undefined;
  /** Number of the next line to start (1-based). */
  private line = 1;
  /** True while discarding the rest of an over-long line. */
  private skipping = false;
  /** Where raw lines that had to be cleaned are copied together (frameUnclean). */
  private scratch = Buffer.alloc(0);

  /** Bytes pushed so far: what `end` offsets count from. */
  private total = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxLineLength: number,
  ) {}

  get broken(): boolean {
    return false;
  }

  /** Lines pass through as bytes: the sink takes them so. */
  private get raw(): boolean {
    return this.sink.lines !== undefined;
  }

  /** Frames every complete line in `chunk`; resolves when the chain can take more. */
  push(chunk: Buffer): void | Promise<void> {
    // Held as it is, an empty chunk would make end() frame an empty line that is not in the stream.
    if (chunk.length === 0) return;
    const data = this.pending ? join(this.pending, chunk) : chunk;
    const base = this.total - (this.pending?.length ?? 0);
    this.total += chunk.length;
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
    const wait = start <= lastLF ? this.frame(data.subarray(start, lastLF + 1), base + start) : undefined;
    if (lastLF + 1 === data.length) return wait;
    // Held only after framing: an over-long rest must not be taken for the tail of an
    // earlier long line, and its line number comes after the lines framed here, some
    // of which may be framed only once the sink's promise resolves.
    const rest = data.subarray(lastLF + 1);
    if (wait) return wait.then(() => this.hold(rest));
    this.hold(rest);
  }

  /** How much a reader should read at a time: large for raw bytes, small when lines become strings. */
  get readSize(): number {
    // JSON lines that are not verbatim are decoded: the smaller size keeps the heap small.
    return this.raw && !this.sink.passes ? RAW_READ : TEXT_READ;
  }

  /** Bytes held of a line whose LF has not come yet. */
  get held(): number {
    return this.pending?.length ?? 0;
  }

  /** Of `chunk`, the bytes up to the LF that ends the line held (all of them without one). */
  completing(chunk: Buffer): number {
    const lf = chunk.indexOf(LF);
    return lf < 0 ? chunk.length : lf + 1;
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
    // The LF added is not in the stream.
    return this.frame(withLF, this.total - rest.length, -1);
  }

  private hold(bytes: Buffer): void {
    if (this.skipping) {
      this.pending = undefined;
      return;
    }
    // A CR at the end may be the one before the LF still to come, which is not part of the line.
    if (bytes.length > this.maxLineLength + (bytes[bytes.length - 1] === CR ? 1 : 0)) {
      this.overLong(bytes, this.line);
      this.pending = undefined;
      this.skipping = true;
    } else {
      this.pending = bytes;
    }
  }

  private overLong(bytes: Uint8Array, line: number): void {
    this.sink.problem({
      kind: 'over-long',
      reason: `line longer than max_line_length (${this.maxLineLength} bytes)`,
      number: line,
      bytes: bytes.subarray(0, 4096),
    });
  }

  /**
   * `lines` holds whole lines, each ending in LF; `base` is the stream offset of
   * its first byte, and `shift` corrects offsets for an LF that is not in the stream.
   */
  private frame(lines: Buffer, base: number, shift = 0): void | Promise<void> {
    this.base = base + shift;
    if (this.raw) return this.frameRaw(lines);
    return this.frameText(lines, 0);
  }

  /** Stream offset of the first byte of the lines being framed, for the sink's `end`. */
  private base = 0;

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
      const wait = this.frameBatch(to - from === lines.length ? lines : lines.subarray(from, to), to);
      from = to;
      if (wait) return from < lines.length ? wait.then(() => this.frameText(lines, from)) : wait;
    }
  }

  /** `end`: where these lines end in the lines being framed. */
  private frameBatch(lines: Buffer, end: number): void | Promise<void> {
    const first = this.line;
    if (this.sink.form === 'bytes') {
      const frames: Buffer[] = [];
      this.eachLine(lines, (start, stop, number) => {
        if (stop - start > this.maxLineLength) {
          this.overLong(lines.subarray(start, stop), number);
          frames.push(EMPTY);
        } else frames.push(lines.subarray(start, stop));
      });
      return this.sink.frames(frames, first, this.base + end);
    }
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
      return this.sink.frames(frames, first, this.base + end);
    }
    const frames: string[] = [];
    this.eachLine(lines, (start, end, number) => {
      const bytes = lines.subarray(start, end);
      if (end - start > this.maxLineLength) {
        this.overLong(bytes, number);
        frames.push('');
      } else if (!isUtf8(bytes)) {
        this.sink.problem({ kind: 'encoding', reason: 'line is not valid UTF-8', number, bytes });
        frames.push('');
      } else {
        frames.push(bytes.toString('utf8'));
      }
    });
    return this.sink.frames(frames, first, this.base + end);
  }

  /** Raw pass-through: hand the bytes on untouched when they are already clean. */
  private frameRaw(lines: Buffer): void | Promise<void> {
    const verbatim = this.sink.passes;
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
      return this.sink.lines!(lines, count, this.base + lines.length);
    }
    return this.frameUnclean(lines);
  }

  /**
   * Raw pass-through of lines some of which are empty, end in CR or are too
   * long: the others are copied together, without their CR, into a buffer of the
   * framer's own, reused once the chain is done with it (see FrameSink.lines).
   */
  private frameUnclean(lines: Buffer): void | Promise<void> {
    const verbatim = this.sink.passes;
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
    return this.sink.lines!(out.subarray(0, used), kept, this.base + lines.length);
  }

  /** `count` lines as bytes, then `lines` from byte `rest` on decoded the normal way. */
  private passThen(bytes: Buffer, count: number, lines: Buffer, rest: number): void | Promise<void> {
    if (count === 0) return this.frameText(lines, rest);
    const wait = this.sink.lines!(bytes, count, this.base + rest);
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

