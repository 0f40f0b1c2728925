// What every framer shares: a framer cuts a byte stream (a file, a pipe, a TCP
// connection) or a series of datagrams into frames and hands them to a sink.
// The input that reads the stream chooses the framing; the sink (the chain's
// side) says in which form it wants the frames.

/**
 * Where a framer hands what it cut, in stream order. Each call may return a
 * promise: the framer's caller awaits it before reading on (backpressure).
 */
export interface FrameSink {
  /**
   * The form the frames are wanted in: 'text' (strings, already checked as
   * UTF-8: frames that are not go to `problem`) or 'bytes' (Buffers).
   */
  readonly form: 'text' | 'bytes';
  /**
   * Whole frames; `first` is the number of frames[0] in the stream (1-based),
   * `end` the number of bytes of the stream consumed through the last of them.
   * '' (or an empty Buffer) stands for a frame that was skipped or reported,
   * so that numbers keep their place. Buffers may be views of the chunk pushed:
   * copy them to keep them past the returned promise.
   */
  frames(frames: string[] | Buffer[], first: number, end: number): void | Promise<void>;
  /** A frame that cannot go on (too long, not UTF-8, cut by the end of the stream). */
  problem(problem: FrameProblem): void;
  /**
   * Present when frames may pass through as bytes (nothing looks inside them):
   * `count` complete LF-terminated lines. `bytes` may be read into again once
   * this returns or its promise resolves. Only line framers use it.
   */
  lines?(bytes: Buffer, count: number, end: number): void | Promise<void>;
  /**
   * With `lines`: whether the line bytes[start, end) may pass as it is; lines
   * it refuses go to `frames`. Absent: every clean line passes.
   */
  readonly passes?: (bytes: Uint8Array, start: number, end: number) => boolean;
}

export interface FrameProblem {
  /** 'over-long', 'encoding', 'truncated' ... : the error record's kind. */
  kind: string;
  reason: string;
  /** Number of the frame in the stream (1-based). */
  number: number;
  /** The frame's bytes, or the start of them: copied into the error record. */
  bytes: Uint8Array;
}

export interface Framer {
  /** Frames what `chunk` completes; resolves when the sink can take more. */
  push(chunk: Buffer): void | Promise<void>;
  /** The stream ended: a last line without LF still counts; a partial binary frame is reported. */
  end(): void | Promise<void>;
  /** Bytes held of a frame not complete yet. */
  readonly held: number;
  /**
   * True once the stream cannot be framed any further (a length prefix over the
   * cap): the reader stops reading it and closes it. Nothing was allocated for it.
   */
  readonly broken: boolean;
}

/** Big-endian length prefixes the length framer reads. */
export type LengthPrefix = 1 | 2 | 4 | 8;
