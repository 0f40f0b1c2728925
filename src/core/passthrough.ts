// The one place that decides whether frames may pass through as bytes, and
// how they are handed on when they do. Passing bytes is worth it: the JSON
// pass-through moves 4x the messages per second of decoding and encoding each
// line, and the Null codecs 3x a plain line loop (npm run bench).
import { isUtf8 } from 'node:buffer';
import type { Codec, Output } from './plugin.js';

const LF = 10;

export interface PassThrough {
  /** How the output takes frames that pass: joined into lines, or one by one. */
  readonly to: 'lines' | 'frames';
  /** Which frames pass, checked on their bytes; absent: every clean frame passes (Null codecs). */
  readonly passes?: (bytes: Uint8Array, start: number, end: number) => boolean;
}

/**
 * Frames pass through as bytes when nothing looks inside messages: no filter,
 * an output that takes unencoded frames, and either codecs that leave frames as
 * they are (Null) or the same verbatim-capable codec (JSON) on both sides,
 * which then picks the frames already in the form its encoder writes.
 */
export function planPassThrough(decoder: Codec, encoder: Codec, filters: number, output: Output): PassThrough | undefined {
  if (filters > 0 || output.passThrough === undefined) return undefined;
  if (output.passThrough === 'lines' && !output.writeLines) return undefined;
  if (decoder.identity === true && encoder.identity === true) return { to: output.passThrough };
  const { verbatim } = decoder;
  if (verbatim && verbatim === encoder.verbatim && !decoder.identity) return { to: output.passThrough, passes: verbatim };
  return undefined;
}

/**
 * Whether one frame (a ZeroMQ message, a datagram) passes as it is. Towards a
 * line output it must make one clean line: not empty, no LF inside. A CR at its
 * end is part of the message and is written out as the decoding path would
 * write it; passing it as bytes keeps a frame that is not UTF-8 out of the
 * error output with the Null codecs.
 */
export function framePasses(plan: PassThrough, frame: Buffer): boolean {
  const size = frame.length;
  if (size === 0) return false;
  if (plan.to === 'lines' && frame.indexOf(LF) >= 0) return false;
  // JSON frames that are not UTF-8 take the decoding path, which reports them.
  if (plan.passes) return isUtf8(frame) && plan.passes(frame, 0, size);
  return true;
}

/** frames[from, end) as LF-terminated lines in one buffer. */
export function joinLines(frames: readonly Buffer[], from: number, end: number): Buffer {
  let length = 0;
  for (let i = from; i < end; i++) length += frames[i]!.length + 1;
  const lines = Buffer.allocUnsafe(length);
  let at = 0;
  for (let i = from; i < end; i++) {
    at += frames[i]!.copy(lines, at);
    lines[at++] = LF;
  }
  return lines;
}

/**
 * LF-terminated lines as one frame each, for an output that takes frames: text
 * when they are UTF-8, else copies (the reader reuses `bytes` once this returns).
 */
export function splitLines(bytes: Buffer): Array<string | Buffer> {
  if (isUtf8(bytes)) return bytes.toString('utf8', 0, bytes.length - 1).split('\n');
  const frames: Buffer[] = [];
  for (let start = 0; start < bytes.length; ) {
    const end = bytes.indexOf(LF, start);
    frames.push(Buffer.from(bytes.subarray(start, end)));
    start = end + 1;
  }
  return frames;
}
