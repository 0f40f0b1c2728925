// A FrameSink that records what a framer hands it, for the framer tests.
import type { FrameProblem, FrameSink } from '../../src/io/framer.js';

export interface Batch {
  frames: (string | Buffer)[];
  first: number;
  end: number;
}

export class RecordingSink implements FrameSink {
  readonly batches: Batch[] = [];
  readonly problems: FrameProblem[] = [];
  /** 'frames' and 'problem <kind>', in the order the calls came. */
  readonly calls: string[] = [];
  /** The frames exactly as handed over (views of the chunks), for checks on copying. */
  readonly handed: (string | Buffer)[][] = [];
  /** Set to make `frames` return a promise (backpressure). */
  answer: (() => void | Promise<void>) | undefined;

  constructor(readonly form: 'text' | 'bytes') {}

  frames(frames: string[] | Buffer[], first: number, end: number): void | Promise<void> {
    this.calls.push('frames');
    this.handed.push([...frames]);
    // Views of a chunk are only valid until the call returns: keep copies.
    this.batches.push({ frames: frames.map((f) => (typeof f === 'string' ? f : Buffer.from(f))), first, end });
    return this.answer?.();
  }

  problem(problem: FrameProblem): void {
    this.calls.push(`problem ${problem.kind}`);
    this.problems.push({ ...problem, bytes: Buffer.from(problem.bytes) });
  }

  /** Every frame handed over, with its number, in order; throws if numbers skip or repeat. */
  numbered(): { number: number; frame: string | Buffer }[] {
    const out: { number: number; frame: string | Buffer }[] = [];
    for (const batch of this.batches) {
      batch.frames.forEach((frame, i) => out.push({ number: batch.first + i, frame }));
    }
    return out;
  }
}
