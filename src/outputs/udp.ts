import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { frameCopy, RuntimeError } from '../core/errors.js';
import { defineOutput, type Frame, type Output, type OutputContext } from '../core/plugin.js';
import { systemReason } from '../io/system-errors.js';

const LABEL = 'UDP output';
/** The largest payload of a UDP datagram over IPv4 (IPv6: 65527). */
const MAX_DATAGRAM = { 4: 65507, 6: 65527 };
/** Sends not yet completed past which the chain waits ... */
const HIGH_WATER = 1024;
/** ... until they are down to this. */
const LOW_WATER = 256;

export default defineOutput({
  summary: "Send each message as one UDP datagram (Perl's Message::Passing::Output::Socket::UDP).",
  description:
    'Each encoded message goes out as one datagram to hostname:port. UDP has no acknowledgement: a message counts as sent once the ' +
    'kernel took it, and a receiver that is not there, or too slow, loses it without anyone knowing. A message too big for a datagram ' +
    '(65507 bytes over IPv4) goes to the error output, as does one the kernel refuses to send.',
  examples: [`message-passing --input File --input_options '{filename: "events.ndjson"}' --output UDP --output_options '{hostname: "127.0.0.1", port: 5140}'`],
  options: {
    hostname: {
      type: 'string',
      default: '127.0.0.1',
      description: 'Where to send: a host name or an address (looked up once, at the start).',
    },
    port: {
      type: 'integer',
      required: true,
      min: 1,
      description: 'UDP port to send to.',
      example: '5140',
    },
  },
  check: (o) => (o.port > 65535 ? `port must be at most 65535, got ${o.port}` : undefined),
  async create(o, context): Promise<Output> {
    let address: { address: string; family: number };
    try {
      address = await lookup(o.hostname);
    } catch (error) {
      throw new RuntimeError(`${LABEL}: cannot resolve ${o.hostname}: ${systemReason(error, 'address')}`);
    }
    const family = address.family === 6 ? 6 : 4;
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    return new UdpOutput(socket, address.address, o.port, MAX_DATAGRAM[family], context);
  },
});

class UdpOutput implements Output {
  readonly passThrough = 'frames';
  private pending = 0;
  private roomWaiter: (() => void) | undefined;
  private doneWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly host: string,
    private readonly port: number,
    private readonly maxDatagram: number,
    private readonly context: OutputContext,
  ) {
    // Errors come with each send's callback; an 'error' event left unheard would end the program.
    socket.on('error', () => undefined);
    context.stopping.addEventListener('abort', () => this.wake(), { once: true });
  }

  write(frames: readonly Frame[]): void | Promise<void> {
    for (const frame of frames) {
      const bytes = typeof frame === 'string' ? Buffer.from(frame) : frame;
      if (bytes.length > this.maxDatagram) {
        this.failed(frame, `a message of ${bytes.length} bytes does not fit in a datagram (at most ${this.maxDatagram})`);
        continue;
      }
      this.pending++;
      this.socket.send(bytes, this.port, this.host, (error) => {
        this.pending--;
        if (error) this.failed(frame, `cannot send to ${this.host}:${this.port}: ${systemReason(error, 'address')}`);
        if (this.pending <= LOW_WATER) this.wake();
        if (this.pending === 0) {
          const waiters = this.doneWaiters;
          this.doneWaiters = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
    if (this.pending <= HIGH_WATER || this.context.stopping.aborted) return;
    return new Promise<void>((resolve) => {
      this.roomWaiter = resolve;
    });
  }

  settled(): void | Promise<void> {
    if (this.pending === 0) return;
    return new Promise<void>((resolve) => this.doneWaiters.push(resolve));
  }

  async close(): Promise<void> {
    await this.settled();
    this.socket.close();
  }

  private failed(frame: Frame, reason: string): void {
    this.context.reportError({ error: 'output', reason: `${LABEL}: ${reason}`, source: 'output:udp', ...frameCopy(frame) });
  }

  private wake(): void {
    const wake = this.roomWaiter;
    this.roomWaiter = undefined;
    wake?.();
  }
}
