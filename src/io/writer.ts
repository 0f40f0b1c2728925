import { fstatSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { RuntimeError } from '../core/errors.js';
import type { Output, OutputContext } from '../core/plugin.js';

/**
 * A line output on a descriptor the program does not own (stdout, stderr): one
 * write per batch, and a closed pipe ends the program quietly, as `| head`
 * expects.
 *
 * Files and devices (a terminal, /dev/null) are written with plain synchronous
 * writes, as Node itself does for them, without loading Node's stream machinery.
 * Pipes and sockets go through the stream that `stream()` returns: it does not
 * block, so a slow reader makes the chain wait ('drain') while a signal can still
 * end the program. Once the stream is in use, every later write goes through it.
 */
export function descriptorOutput(fd: number, label: string, context: OutputContext, stream: () => Writable): Output {
  let direct: boolean | undefined;
  let out: Sender | undefined;
  const viaStream = () => (out ??= streamSender(stream(), label, context));
  /** `borrowed`: the input reads into these bytes again once this returns (see Output.writeRaw). */
  const send = (data: string | Buffer, borrowed: boolean): void | Promise<void> => {
    direct ??= isFileOrDevice(fd);
    if (direct) {
      let rest: string | Buffer | undefined;
      try {
        rest = writeAll(fd, data);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EPIPE') {
          throw new RuntimeError(`cannot write to ${label}: ${(error as Error).message}`);
        }
        out = gone(context);
      }
      if (rest === undefined && !out) return;
      // A descriptor someone made non-blocking (a terminal shared with another program): the stream copes.
      direct = false;
      if (rest === undefined) return;
      data = rest;
    }
    return borrowed && typeof data !== 'string' ? viaStream().sendCopy(data) : viaStream().send(data);
  };
  return {
    write: (frames) => send(frames.join('\n') + '\n', false),
    writeRaw: (bytes) => send(bytes, true),
    close: () => out?.close() ?? Promise.resolve(),
  };
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

/** Once the destination went away: everything else is dropped quietly. */
function gone(context: OutputContext): Sender {
  context.destinationClosed();
  return { send: () => undefined, sendCopy: () => undefined, close: () => Promise.resolve() };
}

interface Sender {
  send(data: string | Buffer): void | Promise<void>;
  /** Sends a copy of `bytes`, which the caller reuses once this returns. */
  sendCopy(bytes: Buffer): void | Promise<void>;
  close(): Promise<void>;
}

/** Writes to a stream, waiting for 'drain' when its buffer is full. */
function streamSender(stream: Writable, label: string, context: OutputContext): Sender {
  let closed = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') {
      closed = true;
      context.destinationClosed();
    } else {
      failure = new RuntimeError(`cannot write to ${label}: ${error.message}`);
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
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed || failure) return resolve();
      // The callback of an empty write runs once everything before it is written.
      stream.write('', () => resolve());
    }).then(() => {
      if (failure) throw failure;
    });
  return { send: (data) => send(data), sendCopy, close };
}
