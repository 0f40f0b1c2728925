import type { Writable } from 'node:stream';
import { RuntimeError } from './errors.js';
import type { Output, OutputContext } from './plugin.js';

/**
 * A line output on a stream that the program does not own (stdout, stderr):
 * one write per batch, waits for 'drain', and a closed pipe ends the program
 * quietly, as `| head` expects.
 */
export function streamOutput(stream: Writable & { fd?: number }, label: string, context: OutputContext): Output {
  let gone = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') {
      gone = true;
      context.destinationClosed();
    } else {
      failure = new RuntimeError(`cannot write to ${label}: ${error.message}`);
    }
    wake?.();
  });
  const send = (data: string | Buffer): void | Promise<void> => {
    if (failure) throw failure;
    if (gone) return;
    if (stream.write(data)) return;
    return new Promise<void>((resolve) => {
      wake = resolve;
      stream.once('drain', resolve);
    }).then(() => {
      wake = undefined;
      if (failure) throw failure;
    });
  };
  return {
    write: (frames) => send(frames.join('\n') + '\n'),
    writeRaw: (bytes) => send(bytes),
    close: () =>
      new Promise<void>((resolve) => {
        if (gone || failure) return resolve();
        // The callback of an empty write runs once everything before it is written.
        stream.write('', () => resolve());
      }).then(() => {
        if (failure) throw failure;
      }),
  };
}
