import { describe, frameCopy } from '../core/errors.js';
import { defineOutput, type Frame, type Message, type Output } from '../core/plugin.js';
import { pickleProtocol1 } from '../codecs/pickle.js';
import { addressProblem, parseAddress } from '../common/net.js';
import { TcpSender } from '../common/tcp-sender.js';

const LABEL = 'PythonLogging output';

export default defineOutput({
  summary: 'Forward records to a Python log server exactly as logging.handlers.SocketHandler sends them.',
  description: [
    'Each message, an object holding a log record\'s fields (as the PythonLogging input makes them), is sent as SocketHandler does: ' +
      'a 4-byte big-endian length, then pickle.dumps(record, 1). A Python receiver built on socketserver, as in the logging cookbook ' +
      '(logging.makeLogRecord of what it unpickles), takes them as records of its own processes. Fields the message lacks take ' +
      "makeLogRecord's defaults. A message that is not an object goes to the error output. The encoder is not used: the record is pickled " +
      'from the message itself.',
    'Connecting, reconnecting, backpressure and the end are those of the TCP output: what cannot be delivered within linger is counted ' +
      'on stderr and the exit status is 1.',
  ].join('\n\n'),
  examples: [
    `message-passing --input PythonLogging --input_options '{bind: "*:9020"}' --output PythonLogging --output_options '{connect: "central.example.com:9020"}'`,
  ],
  options: {
    connect: {
      type: 'string',
      default: '127.0.0.1:9020',
      description: 'The Python log server: HOST:PORT (9020 is DEFAULT_TCP_LOGGING_PORT).',
    },
    linger: {
      type: 'duration',
      default: '5s',
      description: 'At the end, how long to keep trying to deliver what is queued before giving up with exit status 1.',
    },
  },
  check: (o) => addressProblem('connect', o.connect, false),
  create(o, context): Output {
    const sender = new TcpSender({ label: LABEL, address: parseAddress(o.connect, false), linger: o.linger }, context);
    return {
      write(frames: readonly Frame[], messages: readonly Message[]) {
        const records: Buffer[] = [];
        for (let i = 0; i < messages.length; i++) {
          const message = messages[i];
          let pickle: Buffer;
          try {
            if (typeof message !== 'object' || message === null || Array.isArray(message)) {
              throw new Error(`a record is an object of log record fields; this message is ${Array.isArray(message) ? 'a list' : message === null ? 'null' : `a ${typeof message}`}`);
            }
            pickle = pickleProtocol1(message);
          } catch (error) {
            context.reportError({ error: 'output', reason: `${LABEL}: ${describe(error)}`, source: 'output:pythonlogging', ...frameCopy(frames[i]!) });
            continue;
          }
          const length = Buffer.allocUnsafe(4);
          length.writeUInt32BE(pickle.length);
          records.push(length, pickle);
        }
        if (records.length === 0) return;
        return sender.send(Buffer.concat(records), records.length / 2);
      },
      settled: () => sender.settled(),
      queued: () => sender.queued(),
      close: () => sender.close(),
    };
  },
});
