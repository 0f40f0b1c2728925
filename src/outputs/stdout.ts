import { RuntimeError, describe } from '../core/errors.js';
import { defineOutput, type Output, type OutputContext } from '../core/plugin.js';
import { asLines, DescriptorWriter } from '../io/writer.js';
import type { Writable } from 'node:stream';

export default defineOutput({
  summary: 'Write one message per line on standard output.',
  description: 'A closed pipe (as with `| head`) ends the program quietly with status 0.',
  examples: ["message-passing --input STDIN --output STDOUT", "message-passing --decoder Null --encoder Null < app.log | head"],
  options: {},
  create: (_options, context) => descriptorOutput(1, 'standard output', context, () => process.stdout),
});

/** A line output on a descriptor the program does not own (stdout, stderr). */
export function descriptorOutput(fd: number, label: string, context: OutputContext, stream: () => Writable): Output {
  const writer = new DescriptorWriter(fd, label, stream, () => context.destinationClosed());
  const send = (data: string | Buffer, borrowed: boolean): void | Promise<void> => {
    try {
      const wait = writer.write(data, borrowed);
      return wait?.catch(failed);
    } catch (error) {
      failed(error);
    }
  };
  return {
    passThrough: 'lines',
    write: (frames) => send(asLines(frames), false),
    writeLines: (bytes) => send(bytes, true),
    settled: () => writer.flushed(),
    close: () => writer.close().catch(failed),
  };
}

function failed(error: unknown): never {
  throw new RuntimeError(describe(error));
}
