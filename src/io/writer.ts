// The one writer of lines to descriptors: standard output, standard error and
// files (File output) all write through a DescriptorWriter.
import { fstatSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { systemReason } from './system-errors.js';

/** Encoded frames as LF-terminated lines: one string when all are text, else one Buffer. */
export function asLines(frames: readonly (string | Buffer)[]): string | Buffer {
  let text = true;
  for (const frame of frames) {
    if (typeof frame !== 'string') {
      text = false;
      break;
    }
  }
  if (text) return (frames as string[]).join('\n') + '\n';
  const parts: Buffer[] = [];
  for (const frame of frames) parts.push(typeof frame === 'string' ? Buffer.from(frame) : frame, NEWLINE);
  return Buffer.concat(parts);
}

const NEWLINE = Buffer.from('\n');

/**
 * Writes to a descriptor, one write per batch. Files and devices (a terminal,
 * /dev/null) are written with plain synchronous writes, as Node itself does for
 * them, without loading Node's stream machinery. Pipes and sockets go through
 * the stream that `stream()` returns: it does not block, so a slow reader makes
 * the chain wait ('drain') while a signal can still end the program. Once the
 * stream is in use, every later write goes through it. A closed pipe calls
 * `closed` once and drops everything after, as `| head` expects.
 */
export class DescriptorWriter {
  private direct: boolean | undefined;
  private sender: Sender | undefined;

  constructor(
    private readonly fd: number,
    private readonly label: string,
    private readonly stream: () => Writable,
    private readonly closed: () => void,
  ) {}

  /** `borrowed`: the caller writes into these bytes again once this returns (see FrameSink.lines). */
  write(data: string | Buffer, borrowed = false): void | Promise<void> {
    this.direct ??= isFileOrDevice(this.fd);
    if (this.direct) {
      let rest: string | Buffer | undefined;
      try {
        rest = writeAll(this.fd, data);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EPIPE') throw new Error(`cannot write to ${this.label}: ${systemReason(error)}`);
        this.sender = this.gone();
      }
      if (rest === undefined && !this.sender) return;
      // A descriptor someone made non-blocking (a terminal shared with another program): the stream copes.
      this.direct = false;
      if (rest === undefined) return;
      data = rest;
    }
    const sender = (this.sender ??= streamSender(this.stream(), this.label, this.closed));
    return borrowed && typeof data !== 'string' ? sender.sendCopy(data) : sender.send(data);
  }

  /** Resolves once everything written has been handed to the OS. */
  flushed(): void | Promise<void> {
    return this.sender?.flushed();
  }

  close(): Promise<void> {
    return this.sender?.flushed() ?? Promise.resolve();
  }

  /** Once the destination went away: everything else is dropped quietly. */
  private gone(): Sender {
    this.closed();
    return { send: () => undefined, sendCopy: () => undefined, flushed: () => undefined };
  }
}

/** Writes everything synchronously; returns what is left when the descriptor would block (EAGAIN). */
function writeAll(fd: number, data: string | Buffer): string | Buffer | undefined {
  let bytes: Buffer;
  let done = 0;
  if (typeof data === 'string') {
    // A string goes as it is (Node encodes it in a temporary buffer); a short write is rare.
    try {
      done = writeSync(fd, data);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return data;
      throw error;
    }
    if (done === Buffer.byteLength(data)) return undefined;
    bytes = Buffer.from(data);
  } else {
    bytes = data;
  }
  try {
    while (done < bytes.length) done += writeSync(fd, bytes, done);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return bytes.subarray(done);
    throw error;
  }
  return undefined;
}

function isFileOrDevice(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFile() || stat.isCharacterDevice();
  } catch {
    return false;
  }
}

interface Sender {
  send(data: string | Buffer): void | Promise<void>;
  /** Sends a copy of `bytes`, which the caller reuses once this returns. */
  sendCopy(bytes: Buffer): void | Promise<void>;
  /** Resolves once everything sent has been handed to the OS. */
  flushed(): void | Promise<void>;
}

/** Writes to a stream, waiting for 'drain' when its buffer is full. */
function streamSender(stream: Writable, label: string, onClosed: () => void): Sender {
  let closed = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') {
      closed = true;
      onClosed();
    } else {
      failure = new Error(`cannot write to ${label}: ${systemReason(error)}`);
    }
    wake?.();
  });
  // Copies go into buffers taken back once written: a fresh one per write left
  // garbage that a small heap seldom collects (measured with a slow reader: RSS
  // crept from 53 to 79 MB in 10 s, 20 MB of it dead buffers).
  const spare: Buffer[] = [];
  const sendCopy = (bytes: Buffer): void | Promise<void> => {
    if (failure) throw failure;
    if (closed) return;
    let copy = spare.pop();
    if (!copy || copy.length < bytes.length) copy = Buffer.allocUnsafeSlow(Math.max(bytes.length, 64 << 10));
    bytes.copy(copy);
    const taken = copy;
    return send(copy.subarray(0, bytes.length), () => {
      if (spare.length < 4) spare.push(taken);
    });
  };
  const send = (data: string | Buffer, written?: () => void): void | Promise<void> => {
    if (failure) throw failure;
    if (closed) return;
    if (stream.write(data, written && ((error) => error || written()))) return;
    return new Promise<void>((resolve) => {
      wake = resolve;
      stream.once('drain', resolve);
    }).then(() => {
      wake = undefined;
      if (failure) throw failure;
    });
  };
  const flushed = (): void | Promise<void> => {
    if (closed || failure || stream.writableLength === 0) {
      if (failure) throw failure;
      return;
    }
    return new Promise<void>((resolve) => {
      // The callback of an empty write runs once everything before it is written.
      stream.write('', () => resolve());
    }).then(() => {
      if (failure) throw failure;
    });
  };
  return { send: (data) => send(data), sendCopy, flushed };
}
