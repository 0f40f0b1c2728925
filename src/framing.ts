import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';
import { frameCopy } from './errors.js';
import type { InputContext } from './plugin.js';
import type { OptionSpec } from './options.js';

const LF = 10;
const CR = 13;
const NEWLINE = Buffer.from('\n');

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

  constructor(
    private readonly context: InputContext,
    private readonly source: string,
    private readonly maxLineLength: number,
  ) {}

  /** Frames every complete line in `chunk`; resolves when the chain can take more. */
  push(chunk: Buffer): void | Promise<void> {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
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
    const first = this.line;
    if (this.context.raw) return this.frameRaw(lines, first);
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
      return this.context.emit({ frames, source: this.source, first });
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
    return this.context.emit({ frames, source: this.source, first });
  }

  /** Raw pass-through: hand the bytes on untouched when they are already clean. */
  private frameRaw(lines: Buffer, first: number): void | Promise<void> {
    let count = 0;
    let clean = lines[0] !== LF && lines.length <= this.maxLineLength;
    for (let at = lines.indexOf(LF); at >= 0; at = lines.indexOf(LF, at + 1)) {
      count++;
      if (lines[at - 1] === CR || lines[at + 1] === LF) clean = false;
    }
    if (clean) {
      this.line += count;
      return this.context.emitRaw(lines, count);
    }
    const kept: Buffer[] = [];
    let keptLines = 0;
    this.eachLine(lines, (start, end, number) => {
      if (end - start > this.maxLineLength) return this.overLong(lines.subarray(start, end), number);
      if (end === start) return;
      kept.push(lines.subarray(start, end), NEWLINE);
      keptLines++;
    });
    if (keptLines === 0) return;
    return this.context.emitRaw(Buffer.concat(kept), keptLines);
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

/** Feeds a readable stream through a framer until it ends or `stopping` aborts. */
export async function readLines(stream: Readable, framer: LineFramer, stopping: AbortSignal): Promise<void> {
  const stop = () => stream.destroy();
  stopping.addEventListener('abort', stop, { once: true });
  try {
    if (!stopping.aborted) {
      for await (const chunk of stream) {
        const wait = framer.push(chunk as Buffer);
        if (wait) await wait;
      }
    }
  } catch (error) {
    if (!stopping.aborted) throw error;
  } finally {
    stopping.removeEventListener('abort', stop);
  }
  const wait = framer.end();
  if (wait) await wait;
}
