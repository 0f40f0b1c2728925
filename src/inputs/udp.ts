import { defineInput } from '../core/plugin.js';
import { DatagramReceiver, LOOPBACK } from '../common/net.js';

/** The largest payload of a UDP datagram over IPv4. */
const MAX_DATAGRAM = 65507;

export default defineInput({
  summary: "Receive one message per UDP datagram (Perl's Message::Passing::Input::Socket::UDP).",
  description:
    'Each datagram is one frame, decoded as a whole (JSON by default; an empty one is skipped). UDP has no acknowledgement and no ' +
    'backpressure: datagrams the kernel could not hold (its receive buffer full) are lost, and so are those that come while ' +
    '64 MiB of datagrams already wait for a busy chain. Both counts are said on stderr when they grow and at the end. ' +
    'It binds to loopback unless hostname says otherwise ("0.0.0.0" for every interface); anyone who can reach the port can send.',
  examples: [
    `message-passing --input UDP --input_options '{port: 5140}' --output File --output_options '{filename: "udp.ndjson"}'`,
    `message-passing --input Socket::UDP --input_options '{hostname: "0.0.0.0", port: 5140}' --decoder Null`,
  ],
  options: {
    hostname: {
      type: 'string',
      default: LOOPBACK,
      description: 'Address to bind: 127.0.0.1 (loopback, the default), an address of this host, or 0.0.0.0 for every interface.',
    },
    port: {
      type: 'integer',
      required: true,
      min: 0,
      description: 'UDP port to bind.',
      example: '5140',
    },
    max_frame_bytes: {
      type: 'size',
      default: '64KiB',
      min: 1,
      description: 'Longest datagram taken; a longer one goes to the error output (a UDP datagram holds at most 65507 bytes).',
    },
  },
  check: (o) => (o.port > 65535 ? `port must be at most 65535, got ${o.port}` : undefined),
  async create(o, context) {
    const receiver = await DatagramReceiver.bind(
      { host: o.hostname === '*' ? undefined : o.hostname, port: o.port },
      { label: 'UDP input', scheme: 'udp', maxFrameBytes: Math.min(o.max_frame_bytes, MAX_DATAGRAM), maxHeldBytes: 64 << 20, sink: (source) => context.sink({ source }) },
      context,
    );
    return { run: () => receiver.run() };
  },
});
