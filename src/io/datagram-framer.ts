import { isUtf8 } from 'node:buffer';
import type { FrameSink, Framer } from './framer.js';
import { PROBLEM_BYTES } from './length-framer.js';

export interface DatagramFramerOptions {
  /** Longest datagram accepted; a longer one is reported and skipped. */
  maxFrameBytes: number;
}

/**
 * Each datagram pushed is one frame. Datagrams are independent: one over the
 * cap is reported and skipped, and the next one is framed as usual.
 */
export class DatagramFramer implements Framer {
  private readonly maxFrameBytes: number;
  /** Number of the next datagram (1-based). */
  private number = 1;
  /** Bytes of every datagram pushed so far, for the sink's `end`. */
  private total = 0;

  constructor(
    private readonly sink: FrameSink,
    options: DatagramFramerOptions,
  ) {
    if (!Number.isSafeInteger(options.maxFrameBytes) || options.maxFrameBytes < 0) {
      throw new RangeError(`maxFrameBytes must be a whole number of bytes, got ${options.maxFrameBytes}`);
    }
    this.maxFrameBytes = options.maxFrameBytes;
  }

  get held(): number {
    return 0;
  }

  get broken(): boolean {
    return false;
  }

  push(datagram: Buffer): void | Promise<void> {
    const number = this.number++;
    this.total += datagram.length;
    if (datagram.length > this.maxFrameBytes) {
      this.sink.problem({
        kind: 'over-long',
        reason: `datagram of ${datagram.length} bytes is over the cap of ${this.maxFrameBytes} bytes`,
        number,
        bytes: datagram.subarray(0, PROBLEM_BYTES),
      });
      return;
    }
    if (this.sink.form === 'bytes') return this.sink.frames([datagram], number, this.total);
    if (isUtf8(datagram)) return this.sink.frames([datagram.toString('utf8')], number, this.total);
    this.sink.problem({
      kind: 'encoding',
      reason: 'datagram is not valid UTF-8',
      number,
      bytes: datagram.subarray(0, PROBLEM_BYTES),
    });
    // As in a stream's batch, '' keeps the datagram's place in the numbering.
    return this.sink.frames([''], number, this.total);
  }

  end(): void {}
}
