import { maxLineLengthOption } from '../core/common-options.js';
import { defineInput } from '../core/plugin.js';
import type { LengthPrefix } from '../io/framer.js';
import { LengthFramer } from '../io/length-framer.js';
import { LineFramer } from '../io/line-framer.js';
import { addressProblem, parseAddress, StreamServer } from '../common/net.js';

export default defineInput({
  summary: 'Accept TCP connections and read messages from each: one per line (NDJSON), or length-prefixed frames.',
  description: [
    'Many clients may be connected at once; each connection is framed on its own and its messages keep their order. ' +
      'With framing "lines" (the default) LF ends a message, a CR before it is removed and a last line without LF still counts; ' +
      'with --decoder Null the lines are taken as they are. With framing "length" each frame is a big-endian length of length_bytes bytes, ' +
      'then that many bytes (binary codecs such as Pickle need it).',
    'A line over max_line_length goes to the error output and the connection goes on; a length over max_frame_bytes closes that ' +
      'connection with an error record, before anything is allocated for it. A client that disconnects in the middle of a frame loses that ' +
      'frame only, reported as truncated. At most max_connections are open at once; more are refused and reported (one record a second at most). ' +
      'When the chain is busy, connections are read no further (TCP makes their senders wait). There is no authentication or encryption: ' +
      'a port alone binds to loopback, and other hosts can connect only when the address says so ("*:5000").',
  ].join('\n\n'),
  examples: [
    `message-passing --input TCP --input_options '{bind: "127.0.0.1:5000"}' --output File --output_options '{filename: "all.ndjson"}'`,
    `message-passing --input TCP --input_options '{bind: "*:5000", framing: "length"}' --decoder Pickle`,
  ],
  options: {
    bind: {
      type: 'string',
      required: true,
      description: 'Where clients connect: HOST:PORT, a port alone (loopback only), or *:PORT for every interface.',
      example: '127.0.0.1:5000',
    },
    framing: {
      type: 'string',
      choices: ['lines', 'length'],
      default: 'lines',
      description: 'How messages are cut: "lines" (LF ends each) or "length" (a big-endian length prefix, then the frame).',
    },
    max_line_length: maxLineLengthOption,
    max_frame_bytes: {
      type: 'size',
      default: '1MiB',
      min: 1,
      description: 'With framing "length": longest frame accepted; a longer length closes that connection with an error record.',
    },
    length_bytes: {
      type: 'integer',
      min: 1,
      default: 4,
      description: 'With framing "length": bytes of the length prefix, 1, 2, 4 or 8.',
    },
    max_connections: {
      type: 'integer',
      min: 1,
      default: 1000,
      description: 'Connections open at once, at most; more are refused and reported.',
    },
  },
  check: (o) => {
    if (![1, 2, 4, 8].includes(o.length_bytes)) return `length_bytes must be 1, 2, 4 or 8, got ${o.length_bytes}`;
    return addressProblem('bind', o.bind, true);
  },
  async create(o, context) {
    const server = await StreamServer.listen(
      parseAddress(o.bind, true),
      {
        label: 'TCP input',
        scheme: 'tcp',
        maxConnections: o.max_connections,
        framer: (source) =>
          o.framing === 'lines'
            ? new LineFramer(context.sink({ source }), o.max_line_length)
            : new LengthFramer(context.sink({ source }), { prefix: o.length_bytes as LengthPrefix, maxFrameBytes: o.max_frame_bytes }),
      },
      context,
    );
    return { run: () => server.run() };
  },
});
