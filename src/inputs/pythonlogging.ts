import { describe, ERROR_FRAME_LIMIT } from '../core/errors.js';
import { defineInput, type Input, type InputContext } from '../core/plugin.js';
import { GrowingBytes, pickleJsonInto, unpickleGeneral } from '../codecs/pickle.js';
import type { FrameProblem, FrameSink } from '../io/framer.js';
import { LengthFramer } from '../io/length-framer.js';
import { addressProblem, DatagramReceiver, parseAddress, StreamServer } from '../common/net.js';

const LABEL = 'PythonLogging input';
const EMPTY = Buffer.alloc(0);

export default defineInput({
  summary: "Receive Python logging records as SocketHandler (TCP) and DatagramHandler (UDP) send them; never runs what it decodes.",
  description: [
    "Python's logging.handlers.SocketHandler sends each record as a 4-byte big-endian length and a pickle of the record's dict; " +
      'DatagramHandler sends the same bytes, one record per datagram. Each record becomes one JSON object holding the fields as Python sent ' +
      'them, in its order: name, msg (already formatted with its args), args (null), levelname, levelno, pathname, filename, module, ' +
      'exc_info (null), exc_text (the traceback), stack_info, lineno, funcName, created, msecs, relativeCreated, thread, threadName, ' +
      'processName, process, and any extra fields. A float with no fraction (msecs 120.0) becomes a whole number.',
    'Unpickling runs no code: only plain data is accepted (see the Pickle codec). A record that asks for a global, a call or a class ' +
      'instance, or that is not a pickle at all, goes to the error output with a base64 copy, and the connection goes on. Records reach the ' +
      'chain as JSON text, so the default JSON decoder (and every filter) sees an object; with --decoder Pickle they reach it as pickles.',
    'Each connection is framed on its own; a client that disconnects in the middle of a record loses that record only, reported as ' +
      'truncated. A length over max_frame_bytes closes that connection with an error record, before anything is allocated for it. ' +
      'At most max_connections are open at once; more are refused and reported (one record a second at most). Memory held for records ' +
      'still arriving grows with the bytes received, up to max_frame_bytes per connection. The protocol has no authentication: anyone ' +
      'who can reach the port can send records, so it binds to loopback unless told otherwise. UDP can lose datagrams under load: the ' +
      'count is said on stderr.',
  ].join('\n\n'),
  examples: [
    'message-passing --input PythonLogging --output File --output_options \'{filename: "logs/%{name}.log", mkdir: true}\'',
    'message-passing --input PythonLogging --input_options \'{bind: "*:9020", udp: "*:9021"}\' --output STDOUT',
  ],
  options: {
    bind: {
      type: 'string',
      default: '127.0.0.1:9020',
      description:
        'Where SocketHandler clients connect: HOST:PORT, a port alone (loopback), or *:PORT for every interface; "" listens on no TCP port. 9020 is DEFAULT_TCP_LOGGING_PORT.',
    },
    udp: {
      type: 'string',
      description: 'Where DatagramHandler clients send, as bind; off unless given. 9021 is DEFAULT_UDP_LOGGING_PORT.',
      example: '127.0.0.1:9021',
    },
    max_frame_bytes: {
      type: 'size',
      default: '1MiB',
      min: 16,
      description: 'Longest record accepted; a longer length prefix closes that connection (a longer datagram is skipped), with an error record.',
    },
    max_connections: {
      type: 'integer',
      min: 1,
      default: 1000,
      description: 'TCP connections open at once, at most; more are refused and reported.',
    },
  },
  check: (o) => {
    if (o.bind === '' && o.udp === undefined) return 'bind is "" and no udp address is given: nothing would be listened on';
    return (o.bind === '' ? undefined : addressProblem('bind', o.bind, true)) ?? addressProblem('udp', o.udp, true);
  },
  async create(o, context): Promise<Input> {
    const tcp =
      o.bind === ''
        ? undefined
        : await StreamServer.listen(
            parseAddress(o.bind, true),
            {
              label: LABEL,
              scheme: 'tcp',
              maxConnections: o.max_connections,
              framer: (source) => new LengthFramer(new RecordSink(source, context, false), { prefix: 4, maxFrameBytes: o.max_frame_bytes }),
            },
            context,
          );
    const udp =
      o.udp === undefined
        ? undefined
        : await DatagramReceiver.bind(
            parseAddress(o.udp, true),
            {
              label: LABEL,
              scheme: 'udp',
              // The datagram holds the length prefix too.
              maxFrameBytes: o.max_frame_bytes + 4,
              maxHeldBytes: 64 << 20,
              sink: (source) => new RecordSink(source, context, true),
            },
            context,
          ).catch(async (error: unknown) => {
            await tcp?.close();
            throw error;
          });
    return new PythonLoggingInput(tcp, udp);
  },
});

class PythonLoggingInput implements Input {
  constructor(
    private readonly tcp: StreamServer | undefined,
    private readonly udp: DatagramReceiver | undefined,
  ) {}

  async run(): Promise<void> {
    await Promise.all([this.tcp?.run(), this.udp?.run()]);
  }
}

/**
 * Between a framer and the chain: each frame is a SocketHandler record. To a
 * text decoder (JSON, the default) it goes on as the JSON text of the record,
 * which is what JSON.stringify writes for it: when the chain passes lines
 * through (no filter, JSON on both sides, a line output), that text goes
 * straight out, never parsed (measured: half the CPU per record of parsing it
 * and encoding it again, npm run bench). To a bytes decoder (Pickle) the
 * record goes on as its pickle. `prefixed`: a datagram, which carries its
 * length prefix.
 */
export class RecordSink implements FrameSink {
  readonly form = 'bytes';
  private readonly sink: FrameSink;

  constructor(
    private readonly source: string,
    private readonly context: InputContext,
    private readonly prefixed: boolean,
  ) {
    this.sink = context.sink({ source });
  }

  frames(frames: string[] | Buffer[], first: number, end: number): void | Promise<void> {
    const { sink } = this;
    if (sink.form === 'bytes') {
      const pickles: Buffer[] = new Array(frames.length);
      for (let i = 0; i < frames.length; i++) pickles[i] = this.pickle(frames[i] as Buffer, first + i) ?? EMPTY;
      return sink.frames(pickles, first, end);
    }
    const out = takeBuffer();
    const lines = sink.lines !== undefined;
    const texts: Buffer[] = lines ? [] : new Array(frames.length);
    let count = 0;
    for (let i = 0; i < frames.length; i++) {
      const pickle = this.pickle(frames[i] as Buffer, first + i);
      const start = out.used;
      if (pickle !== undefined && this.json(pickle, first + i, out)) {
        if (lines) {
          out.byte(LF);
          count++;
        } else texts[i] = out.buffer.subarray(start, out.used);
      } else if (!lines) texts[i] = EMPTY;
    }
    let wait: void | Promise<void> = undefined;
    try {
      if (!lines) wait = sink.frames(texts, first, end);
      else if (count > 0) wait = sink.lines!(out.buffer.subarray(0, out.used), count, end);
    } catch (error) {
      giveBack(out);
      throw error;
    }
    if (!wait) {
      giveBack(out);
      return;
    }
    // The chain reads the text until then.
    return wait.finally(() => giveBack(out));
  }

  /** A record's pickle, or undefined (reported) when a datagram's length prefix is wrong. */
  private pickle(frame: Buffer, number: number): Buffer | undefined {
    if (frame.length === 0) return undefined;
    if (!this.prefixed) return frame;
    if (frame.length >= 4 && frame.readUInt32BE(0) === frame.length - 4) return frame.subarray(4);
    this.problem({
      kind: 'decode',
      reason: `${LABEL}: a datagram of ${frame.length} bytes whose length prefix says ${frame.length < 4 ? 'nothing (it is shorter than 4 bytes)' : `${frame.readUInt32BE(0)} bytes follow`}`,
      number,
      bytes: frame,
    });
    return undefined;
  }

  /** Appends the record's JSON text to `out`; false (reported) when it is not a plain dict. */
  private json(pickle: Buffer, number: number, out: GrowingBytes): boolean {
    if (pickleJsonInto(pickle, out)) return true;
    try {
      const record = unpickleGeneral(pickle);
      if (typeof record !== 'object' || record === null || Array.isArray(record)) {
        throw new Error(`a record is a dict, and this pickle holds ${record === null ? 'None' : Array.isArray(record) ? 'a list' : `a ${typeof record}`}`);
      }
      out.utf8(JSON.stringify(record));
      return true;
    } catch (error) {
      this.problem({ kind: 'decode', reason: `${LABEL}: ${describe(error)}`, number, bytes: pickle });
      return false;
    }
  }

  /** A record that cannot go on, with a base64 copy of its start: a pickle is binary even when its bytes happen to be UTF-8. */
  problem(problem: FrameProblem): void {
    const bytes = Buffer.from(problem.bytes.buffer, problem.bytes.byteOffset, Math.min(problem.bytes.byteLength, (ERROR_FRAME_LIMIT / 4) * 3));
    this.context.reportError({
      error: problem.kind,
      reason: problem.reason,
      source: `${this.source}:${problem.number}`,
      frame: bytes.toString('base64'),
      encoding: 'base64',
    });
  }
}

const LF = 10;

/**
 * Buffers the JSON of a batch is written into, taken back once the chain is
 * done with it: a few serve every connection (one each would cost 1,000 idle
 * connections 64 MB).
 */
const spare: GrowingBytes[] = [];

function takeBuffer(): GrowingBytes {
  const out = spare.pop() ?? new GrowingBytes();
  out.used = 0;
  return out;
}

function giveBack(out: GrowingBytes): void {
  // A buffer grown for one huge batch is let go rather than kept.
  if (spare.length < 4 && out.buffer.length <= 4 << 20) spare.push(out);
}
