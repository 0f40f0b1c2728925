// What the TCP and UDP plugins share: addresses as options give them, a TCP
// server that frames each connection on its own, a UDP receiver that hands
// datagrams on in batches, and the kernel's count of datagrams it dropped.
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { describe, RuntimeError } from '../core/errors.js';
import type { InputContext } from '../core/plugin.js';
import { DatagramFramer } from '../io/datagram-framer.js';
import type { FrameProblem, FrameSink } from '../io/framer.js';
import { readStream, type ReadableFramer } from '../io/reader.js';
import { systemReason } from '../io/system-errors.js';

export const LOOPBACK = '127.0.0.1';

const EMPTY = Buffer.alloc(0);

export interface Address {
  /** undefined: every interface. */
  host: string | undefined;
  port: number;
}

/** A malformed address: a usage error (see fatal()). */
export class AddressError extends Error {
  readonly misuse = true;
}

/**
 * "HOST:PORT", "[IPv6]:PORT", or a port alone ("9020", ":9020"), which means
 * loopback: a network input is reachable from other hosts only when told so
 * ("*:9020" or "0.0.0.0:9020" for every interface).
 */
export function parseAddress(text: string, listening: boolean): Address {
  const hint = listening
    ? 'expected HOST:PORT such as 127.0.0.1:9020, *:9020 (every interface) or a port alone (loopback)'
    : 'expected HOST:PORT such as 127.0.0.1:9020 or logs.example.com:9020';
  const trimmed = text.trim();
  let host: string | undefined;
  let port: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed);
  if (bracketed) [, host, port] = bracketed as unknown as [string, string, string];
  else if (/^:?\d+$/.test(trimmed)) {
    if (!listening) throw new AddressError(`'${text}' has no host (${hint})`);
    host = LOOPBACK;
    port = trimmed.replace(':', '');
  } else {
    const at = trimmed.lastIndexOf(':');
    if (at <= 0 || trimmed.indexOf(':') !== at) throw new AddressError(`malformed address '${text}' (${hint})`);
    host = trimmed.slice(0, at);
    port = trimmed.slice(at + 1);
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535 || (!listening && Number(port) === 0)) {
    throw new AddressError(`port of '${text}' must be a number from ${listening ? 0 : 1} to 65535 (${hint})`);
  }
  if (host === '*') {
    if (!listening) throw new AddressError(`'${text}': a connection needs a host, not '*' (${hint})`);
    host = undefined;
  }
  return { host, port: Number(port) };
}

/** The address as a person writes it. */
export function formatAddress({ host, port }: Address): string {
  if (host === undefined) return `*:${port}`;
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The check() of a plugin with an address option: what is wrong with it, or nothing. */
export function addressProblem(option: string, value: string | undefined, listening: boolean): string | undefined {
  if (value === undefined) return undefined;
  try {
    parseAddress(value, listening);
    return undefined;
  } catch (error) {
    return `${option}: ${describe(error)}`;
  }
}

/** Binds `server`; an address that cannot be bound is a runtime error that says why. */
export function listen(server: Server, address: Address, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (error: unknown) => reject(new RuntimeError(`${label}: cannot listen on ${formatAddress(address)}: ${systemReason(error, 'address')}`));
    server.once('error', failed);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/**
 * Turns a burst of events into one record per second at most: the first at
 * once, then how many more came meanwhile. A flood of refused connections
 * must not flood the error output.
 */
export class RateLimitedReport {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly report: (count: number) => void,
    private readonly intervalMs = 1000,
  ) {}

  add(): void {
    if (this.timer) {
      this.pending++;
      return;
    }
    this.report(1);
    this.timer = setTimeout(this.tick, this.intervalMs);
  }

  private readonly tick = (): void => {
    this.timer = undefined;
    if (this.pending === 0) return;
    const count = this.pending;
    this.pending = 0;
    this.report(count);
    this.timer = setTimeout(this.tick, this.intervalMs);
  };

  /** Reports what is pending now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending > 0) this.report(this.pending);
    this.pending = 0;
  }
}

export interface StreamServerOptions {
  /** For messages: "TCP input". */
  label: string;
  /** Prefix of each connection's source in error records: "tcp" gives "tcp:127.0.0.1:40112". */
  scheme: string;
  maxConnections: number;
  /** A framer for one connection, handing frames to a sink made for `source`. */
  framer(source: string): ReadableFramer;
}

/**
 * A TCP server whose connections are each read through their own framer.
 * Created listening, so an address in use fails before anything runs; run()
 * lasts until the program stops, then closes every connection (a frame cut by
 * the stop is reported as truncated) once what was read is handed on.
 */
export class StreamServer {
  private readonly connections = new Set<Promise<void>>();
  private readonly sockets = new Set<Socket>();
  private readonly refused: RateLimitedReport;
  /** A failure of the chain (the output cannot write): it ends the input, and the program with status 1. */
  private failure: { error: unknown } | undefined;
  private failed: (() => void) | undefined;
  /** Connections open now. */
  open = 0;

  private constructor(
    private readonly server: Server,
    private readonly address: Address,
    private readonly options: StreamServerOptions,
    private readonly context: InputContext,
  ) {
    this.refused = new RateLimitedReport((count) =>
      context.reportError({
        error: 'connection',
        reason:
          `${count === 1 ? 'a connection was' : `${count} connections were`} refused: max_connections (${options.maxConnections}) ` +
          'are open (raise max_connections, or look for clients that connect and send nothing)',
        source: `${options.scheme}:${formatAddress(address)}`,
      }),
    );
  }

  static async listen(address: Address, options: StreamServerOptions, context: InputContext): Promise<StreamServer> {
    // Paused until its reader is in place: nothing is read before a framer can take it.
    const server = createServer({ pauseOnConnect: true, noDelay: true });
    // Each connection's reader listens for the stop: as many listeners as connections is no leak.
    setMaxListeners(options.maxConnections + 16, context.stopping);
    server.maxConnections = options.maxConnections;
    const instance = new StreamServer(server, address, options, context);
    server.on('connection', (socket) => instance.accept(socket));
    // Node closes a connection over maxConnections at once and says so here.
    server.on('drop', () => instance.refused.add());
    await listen(server, address, options.label);
    // Later errors (too many open files while accepting) cost one connection, not the server.
    server.on('error', (error) =>
      context.reportError({ error: 'connection', reason: `cannot accept a connection: ${systemReason(error, 'address')}`, source: `${options.scheme}:${formatAddress(address)}` }),
    );
    return instance;
  }

  /** The port bound (the one given, or the one the system chose for port 0). */
  get port(): number {
    const bound = this.server.address();
    return typeof bound === 'object' && bound !== null ? bound.port : this.address.port;
  }

  /** Stops listening at once (a later part of the input failed to start). */
  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async run(): Promise<void> {
    const { stopping } = this.context;
    if (!stopping.aborted && !this.failure) {
      await new Promise<void>((resolve) => {
        stopping.addEventListener('abort', () => resolve(), { once: true });
        this.failed = resolve;
      });
    }
    // No new connections; those open end as their readers see the stop.
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.failure) for (const socket of this.sockets) socket.destroy();
    while (this.connections.size > 0) await Promise.all(this.connections);
    this.refused.flush();
    await closed;
    if (this.failure) throw this.failure.error;
  }

  private accept(socket: Socket): void {
    const source = `${this.options.scheme}:${formatAddress({ host: socket.remoteAddress, port: socket.remotePort ?? 0 })}`;
    // A peer that vanished without a word (power cut) is noticed within minutes, not never.
    socket.setKeepAlive(true, 60_000);
    this.open++;
    this.sockets.add(socket);
    let socketError: unknown;
    socket.on('error', (error) => (socketError ??= error));
    const framer = this.options.framer(source);
    const reading = readStream(socket, framer, this.context.stopping).catch(async (error: unknown) => {
      socket.destroy();
      if (error !== socketError) {
        // Not the connection's fault: the chain failed (an output that cannot write). Everything stops.
        this.failure ??= { error };
        this.failed?.();
        return;
      }
      // A reset or a timeout ends the connection like its end would: a frame it cut is reported.
      const wait = framer.end();
      if (wait) await wait;
      if (!isResetLike(error)) {
        this.context.reportError({ error: 'connection', reason: `connection failed: ${systemReason(error, 'address')}`, source });
      }
    });
    const done = reading.finally(() => {
      socket.destroy();
      this.sockets.delete(socket);
      this.open--;
      this.connections.delete(done);
    });
    this.connections.add(done);
    socket.resume();
  }
}

function isResetLike(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT';
}

/**
 * A sink that gathers the frames one framer hands over one at a time (one
 * datagram each) and passes them on as one batch at the next turn of the event
 * loop, or once `limit` are gathered: the chain, and the output's write, then
 * run once per burst rather than once per datagram. Frame numbers the framer
 * skipped (a datagram reported and dropped) stand as '' in the batch.
 */
export class BatchingSink implements FrameSink {
  readonly form: 'text' | 'bytes';
  private gathered: Array<string | Buffer> = [];
  private first = 0;
  private end = 0;
  private scheduled = false;
  /** The batch being handed on, while the chain takes it. */
  private passing: Promise<void> | undefined;
  /** The chain failed on a batch: every later call throws it. */
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly sink: FrameSink,
    private readonly limit = 512,
  ) {
    this.form = sink.form;
  }

  /** Frames gathered and not yet handed on. */
  get held(): number {
    return this.gathered.length;
  }

  frames(frames: string[] | Buffer[], first: number, end: number): void | Promise<void> {
    if (this.failure) throw this.failure.error;
    if (this.gathered.length === 0) this.first = first;
    for (let expected = this.first + this.gathered.length; expected < first; expected++) this.gathered.push(this.form === 'bytes' ? EMPTY : '');
    // The framer's datagrams are their own buffers (a UDP message each): no copy is needed.
    for (const frame of frames) this.gathered.push(frame);
    this.end = end;
    if (this.gathered.length >= this.limit) return this.pass();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        // A failure is kept: the next frames() or pass() throws it.
        this.pass().catch(() => undefined);
      });
    }
    return this.passing;
  }

  problem(problem: FrameProblem): void {
    this.sink.problem(problem);
  }

  /** Hands on what is gathered, after the batch before it; resolves when the chain can take more. */
  pass(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    const previous = this.passing;
    const frames = this.gathered;
    if (frames.length === 0) return previous ?? Promise.resolve();
    this.gathered = [];
    const { first, end } = this;
    const send = () => this.sink.frames(frames as string[] | Buffer[], first, end);
    const passing: Promise<void> = (previous ?? Promise.resolve())
      .then(send)
      .catch((error: unknown) => {
        this.failure ??= { error };
        throw error;
      })
      .finally(() => {
        if (this.passing === passing) this.passing = undefined;
      });
    this.passing = passing;
    return passing;
  }
}

export interface DatagramReceiverOptions {
  label: string;
  /** Prefix of the source in error records: "udp" gives "udp:127.0.0.1:9021". */
  scheme: string;
  /** Longest datagram taken; a longer one is reported and skipped. */
  maxFrameBytes: number;
  /** Datagrams held while the chain is busy, at most; more are dropped and counted. */
  maxHeldBytes: number;
  /** Where the datagrams go, in batches, for a socket bound as `source`. */
  sink(source: string): FrameSink;
}

/**
 * A bound UDP socket: each datagram is one frame, handed on in batches. UDP
 * cannot be told to wait: while the chain is busy, datagrams are held up to
 * maxHeldBytes, and past that dropped and counted, as the kernel does when its
 * buffer is full. Both counts are said on stderr (context.warn) when they grow
 * (looked at every 5 s) and at the end.
 */
export class DatagramReceiver {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private waiting: Promise<void> | undefined;
  /** Datagrams dropped here because the chain was busy and the holding space full. */
  private droppedHere = 0;
  /** A failure of the chain (the output cannot write): it ends the input, and the program with status 1. */
  private failure: { error: unknown } | undefined;
  private failed: (() => void) | undefined;
  private reported = { here: 0, kernel: 0 };
  private readonly kernelDrops: KernelDrops | undefined;
  private readonly batching: BatchingSink;
  private readonly framer: DatagramFramer;
  readonly source: string;

  private constructor(
    private readonly socket: DatagramSocket,
    private readonly options: DatagramReceiverOptions,
    private readonly context: InputContext,
  ) {
    const { address, port } = socket.address();
    this.source = `${options.scheme}:${formatAddress({ host: address, port })}`;
    this.batching = new BatchingSink(options.sink(this.source));
    this.framer = new DatagramFramer(this.batching, { maxFrameBytes: options.maxFrameBytes });
    this.kernelDrops = KernelDrops.watch(socket);
  }

  static async bind(address: Address, options: DatagramReceiverOptions, context: InputContext): Promise<DatagramReceiver> {
    const family = address.host !== undefined && isIP(address.host) === 6 ? 'udp6' : 'udp4';
    const socket = createSocket({ type: family });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => reject(new RuntimeError(`${options.label}: cannot bind ${formatAddress(address)}: ${systemReason(error, 'address')}`)));
      socket.bind({ address: address.host, port: address.port }, () => resolve());
    });
    socket.removeAllListeners('error');
    // Until run() listens, an error is kept for it to throw (an 'error' nobody hears would end the program).
    const early: { error?: Error } = {};
    socket.on('error', (error) => (early.error ??= error));
    try {
      // A larger receive buffer rides out bursts; the kernel caps it at net.core.rmem_max.
      socket.setRecvBufferSize(8 << 20);
    } catch {
      // Kept at the system's default.
    }
    const receiver = new DatagramReceiver(socket, options, context);
    receiver.early = early;
    return receiver;
  }

  private early: { error?: Error } = {};

  get port(): number {
    return this.socket.address().port;
  }

  async run(): Promise<void> {
    const { stopping } = this.context;
    const watch = setInterval(() => this.reportDrops(), 5000);
    watch.unref();
    try {
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          // The error listener stays: a late error then settles nothing, and ends nothing.
          this.socket.off('message', this.onMessage);
          resolve();
        };
        const onError = (error: Error) => {
          stopping.removeEventListener('abort', stop);
          this.socket.off('message', this.onMessage);
          reject(new RuntimeError(`${this.options.label}: ${this.source}: ${systemReason(error, 'address')}`));
        };
        this.socket.removeAllListeners('error');
        this.socket.on('message', this.onMessage);
        this.socket.on('error', onError);
        this.failed = stop;
        if (this.early.error) onError(this.early.error);
        else if (stopping.aborted) stop();
        else stopping.addEventListener('abort', stop, { once: true });
      });
      // What was received before the stop still goes on.
      while (this.waiting && !this.failure) await this.waiting;
      if (!this.failure) await this.batching.pass();
      if (this.failure) throw this.failure.error;
    } finally {
      clearInterval(watch);
      this.reportDrops();
      this.socket.close();
    }
  }

  private readonly onMessage = (datagram: Buffer): void => {
    if (this.waiting) {
      if (this.heldBytes + datagram.length > this.options.maxHeldBytes) {
        this.droppedHere++;
        return;
      }
      this.held.push(datagram);
      this.heldBytes += datagram.length;
      return;
    }
    this.push(datagram);
  };

  private push(datagram: Buffer): void {
    if (this.failure) return;
    let wait: void | Promise<void>;
    try {
      wait = this.framer.push(datagram);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (!wait) return;
    this.waiting = wait.then(
      () => this.release(),
      (error: unknown) => {
        this.waiting = undefined;
        this.fail(error);
      },
    );
  }

  /** The chain failed: the input ends, and run() throws it. */
  private fail(error: unknown): void {
    this.failure ??= { error };
    this.failed?.();
  }

  /** The chain took the last batch: what was held meanwhile goes on, in order. */
  private release(): void {
    this.waiting = undefined;
    while (this.held.length > 0 && !this.waiting) {
      const datagram = this.held.shift()!;
      this.heldBytes -= datagram.length;
      this.push(datagram);
    }
  }

  private reportDrops(): void {
    const kernel = this.kernelDrops?.read() ?? 0;
    const here = this.droppedHere;
    if (kernel === this.reported.kernel && here === this.reported.here) return;
    this.reported = { kernel, here };
    const parts: string[] = [];
    if (kernel > 0) parts.push(`the kernel dropped ${kernel} (its receive buffer was full; raise net.core.rmem_max)`);
    if (here > 0) parts.push(`${here} came while ${formatBytes(this.options.maxHeldBytes)} of datagrams already waited for the chain`);
    this.context.warn(`${this.options.label}: datagrams lost on ${this.source} so far: ${parts.join('; ')}`);
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1 << 20 ? `${Math.round(bytes / (1 << 20))} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/**
 * The kernel's count of datagrams it dropped for one socket (its receive
 * buffer full), from /proc/net/udp and udp6 (Linux); elsewhere nothing is known.
 */
export class KernelDrops {
  private readonly base: number;

  private constructor(
    private readonly port: number,
    private readonly family: 'udp' | 'udp6',
  ) {
    this.base = this.total() ?? 0;
  }

  static watch(socket: DatagramSocket): KernelDrops | undefined {
    const { port, family } = socket.address();
    const watcher = new KernelDrops(port, family === 'IPv6' ? 'udp6' : 'udp');
    return watcher.total() === undefined ? undefined : watcher;
  }

  /** Drops since the watch began. */
  read(): number {
    return Math.max(0, (this.total() ?? this.base) - this.base);
  }

  private total(): number | undefined {
    let table: string;
    try {
      table = readFileSync(`/proc/net/${this.family}`, 'latin1');
    } catch {
      return undefined;
    }
    const port = this.port.toString(16).toUpperCase().padStart(4, '0');
    let drops: number | undefined;
    for (const line of table.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st ... drops (the last field).
      if (fields.length < 13 || !fields[1]!.endsWith(`:${port}`)) continue;
      drops = (drops ?? 0) + Number(fields[fields.length - 1]);
    }
    return drops;
  }
}
