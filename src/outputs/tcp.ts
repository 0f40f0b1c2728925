import { frameCopy } from '../core/errors.js';
import { defineOutput, type Frame, type Output } from '../core/plugin.js';
import type { LengthPrefix } from '../io/framer.js';
import { addressProblem, parseAddress } from '../common/net.js';
import { lengthPrefixed, TcpSender } from '../common/tcp-sender.js';
import { asLines } from '../io/writer.js';

export default defineOutput({
  summary: 'Send each message to a TCP server: one per line (NDJSON), or length-prefixed frames.',
  description: [
    'Connects to `connect` and sends each message as a line (framing "lines", the default) or as a big-endian length of length_bytes ' +
      'bytes and the frame (framing "length", for binary encoders such as Pickle). A server that is not there yet, or that goes away, is ' +
      'connected to again with a growing pause (0.1 s doubling to 5 s), said once on stderr; messages wait meanwhile, and past 4 MiB of ' +
      'them the chain waits too (backpressure), as it does for a server that reads slowly.',
    'A message counts as sent once the kernel has it. What a broken connection had not handed to the kernel is sent again on the next ' +
      'one; what the kernel held for it is lost without a count (on Linux at most the send buffer here, net.ipv4.tcp_wmem, plus the receive buffer of the server, net.ipv4.tcp_rmem). At the end ' +
      'the output keeps trying for `linger`: then either everything was handed over and the connection is closed (the server reads to ' +
      'the end first), or the number of messages not delivered is printed on stderr and the exit status is 1.',
  ].join('\n\n'),
  examples: [
    `message-passing --input File --input_options '{filename: "events.ndjson"}' --output TCP --output_options '{connect: "logs.example.com:5000"}'`,
    `message-passing --output TCP --output_options '{connect: "127.0.0.1:9020", framing: "length"}' --encoder Pickle`,
  ],
  options: {
    connect: {
      type: 'string',
      required: true,
      description: 'The server: HOST:PORT.',
      example: '127.0.0.1:5000',
    },
    framing: {
      type: 'string',
      choices: ['lines', 'length'],
      default: 'lines',
      description: 'How messages are delimited: "lines" (an LF after each) or "length" (a big-endian length prefix before each).',
    },
    length_bytes: {
      type: 'integer',
      min: 1,
      default: 4,
      description: 'With framing "length": bytes of the length prefix, 1, 2, 4 or 8.',
    },
    linger: {
      type: 'duration',
      default: '5s',
      description: 'At the end, how long to keep trying to deliver what is queued (reconnecting if need be) before giving up with exit status 1.',
    },
  },
  check: (o) => {
    if (![1, 2, 4, 8].includes(o.length_bytes)) return `length_bytes must be 1, 2, 4 or 8, got ${o.length_bytes}`;
    return addressProblem('connect', o.connect, false);
  },
  create(o, context): Output {
    const sender = new TcpSender({ label: 'TCP output', address: parseAddress(o.connect, false), linger: o.linger }, context);
    const prefix = o.length_bytes as LengthPrefix;
    const lines = o.framing === 'lines';
    return {
      passThrough: lines ? 'lines' : 'frames',
      write(frames: readonly Frame[]) {
        if (frames.length === 0) return;
        if (lines) {
          const text = asLines(frames);
          return sender.send(typeof text === 'string' ? Buffer.from(text) : text, frames.length);
        }
        const { data, count, tooLong } = lengthPrefixed(frames, prefix);
        for (const i of tooLong) {
          const frame = frames[i]!;
          context.reportError({
            error: 'output',
            reason: `TCP output: a frame of ${Buffer.byteLength(frame)} bytes does not fit a ${prefix}-byte length (raise length_bytes)`,
            source: 'output:tcp',
            ...frameCopy(frame),
          });
        }
        return count > 0 ? sender.send(data, count) : undefined;
      },
      // The bytes are the reader's to reuse once this returns: the queue keeps a copy.
      writeLines: (bytes, count) => sender.send(Buffer.from(bytes), count),
      settled: () => sender.settled(),
      queued: () => sender.queued(),
      close: () => sender.close(),
    };
  },
});
