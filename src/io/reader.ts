// The one reader of descriptors and streams: STDIN, File (once or followed) and
// network streams feed their framer through here.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Framer } from './framer.js';

/** A framer, and how it would like to be read (the line framer's buffer reuse). */
export interface ReadableFramer extends Framer {
  /** How much to read at a time. */
  readonly readSize?: number;
  /**
   * Copies the bytes held of an unfinished frame to the start of `buffer` and
   * holds them from there, so that a read landing right after them continues
   * them in memory. Returns how many bytes were moved.
   */
  moveHeldTo?(buffer: Buffer): number;
  /**
   * How many bytes of `chunk` complete the frame held (all of them when it goes
   * on past the chunk): once stopping, only those are framed. Absent: all.
   */
  completing?(chunk: Buffer): number;
}

const EMPTY = Buffer.alloc(0);
/** Reads of framers that do not say: large reads are what make a file input fast. */
const READ_SIZE = 256 << 10;
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
export async function readDescriptor(
  fd: number,
  framer: ReadableFramer,
  stopping: AbortSignal,
  stream: () => Readable,
  /** A regular file is read from this offset. */
  start = 0,
): Promise<void> {
  const stat = fstatSync(fd);
  if (stat.isFile()) {
    await readSynchronously(fd, framer, stopping, start);
    return;
  }
  // Linux's memory devices (major 1: /dev/null, /dev/zero, /dev/urandom) never make a read wait either.
  if (stat.isCharacterDevice() && ((stat.rdev >> 8) & 0xfff) === 1) {
    await readSynchronously(fd, framer, stopping, null);
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
        ended = await readSynchronously(pipe, framer, stopping, undefined);
      } finally {
        closeSync(pipe);
      }
      if (ended) return;
    }
  }
  return readStream(stream(), framer, stopping);
}

/**
 * Reads one descriptor with readSync into one buffer, read into again and
 * again: fresh memory costs a page fault per 4 KiB (measured: 20% of a raw
 * pass-through). Once the framer's `push` returned or its promise resolved,
 * nothing refers to a chunk any more (see FrameSink.lines), except held
 * bytes, which are moved to the start before the buffer is reused. STDIN, File
 * and each followed file read through one of these.
 */
export class DescriptorReader {
  private buffer = EMPTY;
  private used = 0;
  /** What the framer's last push returned: await it before reading on. */
  wait: void | Promise<void> = undefined;

  constructor(
    private readonly fd: number,
    private readonly framer: ReadableFramer,
  ) {}

  /**
   * Reads once, at `position` (null: on from the last read), and pushes what
   * came to the framer, or with `finishing` only what completes the frame it
   * holds. Returns the number of bytes read: 0 at the end, -1 when a
   * non-blocking descriptor has nothing now.
   */
  read(position: number | null, finishing = false): number {
    const size = this.framer.readSize ?? READ_SIZE;
    if (this.buffer.length - this.used < size) {
      const held = this.framer.held;
      if (held + size > this.buffer.length) this.buffer = Buffer.allocUnsafeSlow(held + 2 * size);
      this.used = this.framer.moveHeldTo?.(this.buffer) ?? 0;
    }
    let count: number;
    try {
      count = readSync(this.fd, this.buffer, this.used, size, position);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return -1;
      throw error;
    }
    const pushed = finishing && count > 0 && this.framer.completing ? this.framer.completing(this.buffer.subarray(this.used, this.used + count)) : count;
    this.wait = pushed > 0 ? this.framer.push(this.buffer.subarray(this.used, this.used + pushed)) : undefined;
    this.used += pushed;
    return count;
  }

  /** Lets the buffer go while the descriptor is idle (a followed file at rest), unless bytes are held in it. */
  idle(): void {
    if (this.framer.held > 0) return;
    this.buffer = EMPTY;
    this.used = 0;
  }
}

/**
 * Reads `fd` to its end through a DescriptorReader. Returns false when a
 * non-blocking descriptor has nothing yet (EAGAIN), true once the input ended
 * (or stopped) and was drained.
 */
async function readSynchronously(
  fd: number,
  framer: ReadableFramer,
  stopping: AbortSignal,
  /** A file's offset to read at; null for a device; undefined for a pipe (which must not wait). */
  position: number | null | undefined,
): Promise<boolean> {
  const reader = new DescriptorReader(fd, framer);
  const file = position !== undefined;
  let unyielded = 0;
  // Once stopped, the line cut by the last read of a file is still read to its
  // end (it is in the file, and framing half of it would report a bogus error),
  // and no further: a stop must not wait for the rest of a large file.
  while (!stopping.aborted || (file && framer.held > 0)) {
    const count = reader.read(position ?? null, stopping.aborted);
    if (count < 0) return false;
    if (count === 0) break;
    if (typeof position === 'number') position += count;
    if (reader.wait) await reader.wait;
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
export async function readStream(stream: Readable, framer: ReadableFramer, stopping: AbortSignal): Promise<void> {
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
          if (framer.held > 0 && framer.moveHeldTo) {
            const size = framer.held + chunk.length;
            if (!joined || joined.length < size) joined = Buffer.allocUnsafeSlow(Math.max(size, 2 * (joined?.length ?? 64 << 10)));
            const held = framer.moveHeldTo(joined);
            chunk.copy(joined, held);
            chunk = joined.subarray(held, size);
          }
          wait = framer.push(chunk);
          // A frame over the cap: nothing of it is kept, and the stream is closed.
          if (framer.broken) {
            stream.pause();
            finish();
            stream.destroy();
            return;
          }
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
