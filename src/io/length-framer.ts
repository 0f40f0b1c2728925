import { constants as bufferConstants, isUtf8 } from 'node:buffer';
import type { FrameSink, Framer, LengthPrefix } from './framer.js';

/** Bytes of a bad frame a problem carries at most: the error record shows only its start. */
export const PROBLEM_BYTES = 4096;

export interface LengthFramerOptions {
  /** Bytes of the big-endian unsigned length before each frame. */
  prefix: LengthPrefix;
  /** Longest frame accepted; a longer announced length breaks the stream. */
  maxFrameBytes: number;
}

/**
 * Cuts a byte stream into frames that each start with their length: `prefix`
 * bytes, big-endian, unsigned, then that many bytes. Frames a chunk holds whole
 * go to the sink as views of it; a frame cut across chunks is copied into a
 * buffer of its own length, allocated only once the length is known to be
 * within the cap. A length over the cap breaks the stream: past it nothing can
 * be trusted to be a frame boundary.
 */
export class LengthFramer implements Framer {
  private readonly prefix: LengthPrefix;
  private readonly maxFrameBytes: number;
  /** Number of the next frame to start (1-based). */
  private number = 1;
  /** Bytes pushed so far. */
  private total = 0;
  /** The length prefix of the next frame while it arrives cut across chunks, then of the frame assembled. */
  private readonly prefixBytes = Buffer.alloc(8);
  private prefixHave = 0;
  /** The frame being assembled across chunks, allocated to its announced length. */
  private partial: Buffer | undefined;
  private partialHave = 0;
  private isBroken = false;

  constructor(
    private readonly sink: FrameSink,
    options: LengthFramerOptions,
  ) {
    const { prefix, maxFrameBytes } = options;
    if (![1, 2, 4, 8].includes(prefix)) throw new RangeError(`length prefix must be 1, 2, 4 or 8 bytes, got ${prefix}`);
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > bufferConstants.MAX_LENGTH) {
      throw new RangeError(`maxFrameBytes must be a whole number from 0 to ${bufferConstants.MAX_LENGTH}, got ${maxFrameBytes}`);
    }
    this.prefix = prefix;
    this.maxFrameBytes = maxFrameBytes;
  }

  get held(): number {
    return this.prefixHave + (this.partial ? this.prefix + this.partialHave : 0);
  }

  get broken(): boolean {
    return this.isBroken;
  }

  push(chunk: Buffer): void | Promise<void> {
    if (this.isBroken || chunk.length === 0) return;
    const base = this.total;
    this.total += chunk.length;
    const first = this.number;
    const frames: Buffer[] = [];
    let end = 0;
    let at = 0;
    /** The length over the cap and what came after it, reported after the frames before it. */
    let overLong: [prefix: Buffer, after: Buffer] | undefined;
    while (at < chunk.length) {
      if (this.partial) {
        const partial = this.partial;
        const taken = chunk.copy(partial, this.partialHave, at, at + partial.length - this.partialHave);
        this.partialHave += taken;
        at += taken;
        if (this.partialHave < partial.length) break;
        this.partial = undefined;
        this.partialHave = 0;
        frames.push(partial);
        end = base + at;
        continue;
      }
      let length: number;
      let frameStart: number;
      if (this.prefixHave > 0 || chunk.length - at < this.prefix) {
        const taken = chunk.copy(this.prefixBytes, this.prefixHave, at, at + this.prefix - this.prefixHave);
        this.prefixHave += taken;
        at += taken;
        if (this.prefixHave < this.prefix) break;
        this.prefixHave = 0;
        length = readLength(this.prefixBytes, 0, this.prefix);
        frameStart = at;
        if (length > this.maxFrameBytes) {
          overLong = [this.prefixBytes.subarray(0, this.prefix), chunk.subarray(at)];
          break;
        }
      } else {
        length = readLength(chunk, at, this.prefix);
        frameStart = at + this.prefix;
        if (length > this.maxFrameBytes) {
          overLong = [chunk.subarray(at, frameStart), chunk.subarray(frameStart)];
          break;
        }
      }
      if (chunk.length - frameStart >= length) {
        at = frameStart + length;
        frames.push(chunk.subarray(frameStart, at));
        end = base + at;
      } else {
        // Kept for the record of a frame the end of the stream cuts.
        if (frameStart > at) chunk.copy(this.prefixBytes, 0, at, frameStart);
        this.partial = Buffer.allocUnsafe(length);
        this.partialHave = chunk.copy(this.partial, 0, frameStart);
        at = chunk.length;
      }
    }
    this.number += frames.length;
    const wait = frames.length > 0 ? this.sink.frames(this.sink.form === 'text' ? this.texts(frames, first) : frames, first, end) : undefined;
    if (overLong) this.breakOn(...overLong);
    return wait;
  }

  /** A partial frame (or length) left at the end of the stream is reported; nothing else is. */
  end(): void {
    if (this.isBroken || this.held === 0) return;
    let reason: string;
    let bytes: Uint8Array;
    if (this.partial) {
      reason = `stream ended ${this.partialHave} bytes into a frame of ${this.partial.length} bytes`;
      bytes = withPrefix(this.prefixBytes.subarray(0, this.prefix), this.partial.subarray(0, this.partialHave));
    } else {
      reason = `stream ended ${this.prefixHave} bytes into the ${this.prefix}-byte length of a frame`;
      bytes = Buffer.from(this.prefixBytes.subarray(0, this.prefixHave));
    }
    this.sink.problem({ kind: 'truncated', reason, number: this.number, bytes });
    this.partial = undefined;
    this.partialHave = 0;
    this.prefixHave = 0;
  }

  /** Reports the frame announced too long and stops framing: nothing is allocated for it. */
  private breakOn(prefix: Buffer, after: Buffer): void {
    this.isBroken = true;
    const announced = this.prefix === 8 ? prefix.readBigUInt64BE(0).toString() : String(readLength(prefix, 0, this.prefix));
    this.sink.problem({
      kind: 'over-long',
      reason: `frame length ${announced} bytes is over the cap of ${this.maxFrameBytes} bytes`,
      number: this.number,
      bytes: withPrefix(prefix, after),
    });
  }

  /** Frames as strings; one that is not UTF-8 is reported and stands as ''. */
  private texts(frames: Buffer[], first: number): string[] {
    return frames.map((frame, i) => {
      if (isUtf8(frame)) return frame.toString('utf8');
      this.sink.problem({
        kind: 'encoding',
        reason: 'frame is not valid UTF-8',
        number: first + i,
        bytes: frame.subarray(0, PROBLEM_BYTES),
      });
      return '';
    });
  }
}

/**
 * The big-endian length at `at`. An 8-byte length past 2^53 comes out rounded,
 * still past 2^53 and so past any cap a Buffer can hold: it is only compared.
 */
function readLength(bytes: Buffer, at: number, prefix: LengthPrefix): number {
  switch (prefix) {
    case 1:
      return bytes[at]!;
    case 2:
      return bytes.readUInt16BE(at);
    case 4:
      return bytes.readUInt32BE(at);
    case 8:
      return bytes.readUInt32BE(at) * 2 ** 32 + bytes.readUInt32BE(at + 4);
  }
}

/** A copy of `prefix` then the start of `rest`, at most PROBLEM_BYTES in all. */
function withPrefix(prefix: Uint8Array, rest: Uint8Array): Buffer {
  const restBytes = Math.min(rest.length, PROBLEM_BYTES - prefix.length);
  const out = Buffer.allocUnsafe(prefix.length + restBytes);
  out.set(prefix);
  out.set(rest.subarray(0, restBytes), prefix.length);
  return out;
}
