// The sending side of a TCP connection that outputs share (TCP, PythonLogging):
// it connects, reconnects with backoff, queues while the peer is away or slow
// (and makes the chain wait past a bound), and at the end either hands
// everything to the kernel or says how many messages it could not.
import { connect, type Socket } from 'node:net';
import { plural, RuntimeError } from '../core/errors.js';
import type { OutputContext } from '../core/plugin.js';
import { formatDuration } from '../core/time.js';
import { formatAddress, type Address } from './net.js';
import { systemReason } from '../io/system-errors.js';

/** Bytes queued (not yet handed to the kernel) past which send() makes the chain wait ... */
const HIGH_WATER = 4 << 20;
/** ... until they are down to this. */
const LOW_WATER = 1 << 20;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

interface Chunk {
  data: Buffer;
  /** Messages in it. */
  count: number;
  /** Handed to the kernel (the write's callback came without an error). */
  done: boolean;
}

export interface TcpSenderOptions {
  /** For messages: "TCP output". */
  label: string;
  address: Address;
  /** How long close() keeps trying to deliver what is queued, in ms. */
  linger: number;
}

/**
 * Messages count as sent once the kernel has them, as with a file. What a
 * connection that breaks had not handed to the kernel is sent again on the
 * next one; what the kernel held for it when it broke is lost without a count
 * (TCP cannot say how much of it the peer read).
 */
export class TcpSender {
  /** Chunks not yet written to a socket, oldest first. */
  private queue: Chunk[] = [];
  /** Chunks written to the current socket whose write has not completed. */
  private inFlight: Chunk[] = [];
  private pendingBytes = 0;
  private socket: Socket | undefined;
  private connected = false;
  private draining = false;
  private backoff = FIRST_BACKOFF_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private lastError: unknown;
  /** An outage was said on stderr; its end is said too. */
  private warned = false;
  private closing = false;
  private closed = false;
  private roomWaiters: Array<() => void> = [];
  private emptyWaiters: Array<() => void> = [];
  private readonly where: string;

  constructor(
    private readonly options: TcpSenderOptions,
    private readonly context: OutputContext,
  ) {
    this.where = formatAddress(options.address);
    // After a stop nothing waits for room: close() counts what is left.
    context.stopping.addEventListener('abort', () => this.wakeRoom(true), { once: true });
    this.connect();
  }

  /** Queues `data` (`count` messages); resolves when the chain may go on. */
  send(data: Buffer, count: number): void | Promise<void> {
    if (this.closed) throw new RuntimeError(`${this.options.label}: write after close`);
    if (data.length === 0) return;
    this.queue.push({ data, count, done: false });
    this.pendingBytes += data.length;
    this.flush();
    if (this.pendingBytes <= HIGH_WATER || this.context.stopping.aborted) return;
    return new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  /** Messages not yet in the kernel's hands; after close(), those left behind. */
  queued(): number {
    let count = 0;
    for (const chunk of this.inFlight) if (!chunk.done) count += chunk.count;
    for (const chunk of this.queue) count += chunk.count;
    return count;
  }

  /** Resolves once everything sent so far is in the kernel's hands. */
  settled(): void | Promise<void> {
    if (this.pendingBytes === 0) return;
    return new Promise<void>((resolve) => this.emptyWaiters.push(resolve));
  }

  /** Delivers what is queued within linger, then closes; throws with the count of what could not be delivered. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    const { linger, label } = this.options;
    if (this.pendingBytes > 0) {
      // Reconnecting goes on meanwhile, its backoff cut short: linger is the time left to deliver.
      if (!this.connected && this.reconnectTimer) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = undefined;
        this.connect();
      }
      await withTimeout(new Promise<void>((resolve) => this.emptyWaiters.push(resolve)), linger);
    }
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const left = [...this.inFlight, ...this.queue].filter((chunk) => !chunk.done);
    const socket = this.socket;
    if (left.length > 0) {
      socket?.destroy();
      const count = left.reduce((sum, chunk) => sum + chunk.count, 0);
      const why = this.connected
        ? 'the server did not take them in time'
        : this.lastError !== undefined
          ? `cannot connect: ${systemReason(this.lastError, 'address')}`
          : 'no connection was made in time';
      throw new RuntimeError(
        `${label}: ${plural(count, 'message')} could not be delivered to ${this.where} within linger (${formatDuration(linger)}): ${why}`,
      );
    }
    if (socket && this.connected) {
      // A half-close: the peer reads to the end, then closes its side (or linger runs out).
      const gone = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.end();
      await withTimeout(gone, linger);
    }
    socket?.destroy();
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    const { host, port } = this.options.address;
    const socket = connect({ host: host ?? '127.0.0.1', port, noDelay: true });
    socket.setKeepAlive(true, 60_000);
    this.socket = socket;
    socket.on('connect', () => {
      this.connected = true;
      this.backoff = FIRST_BACKOFF_MS;
      if (this.warned) {
        this.warned = false;
        this.context.warn(`${this.options.label}: connected to ${this.where} again`);
      }
      this.flush();
    });
    // Data from the peer is not expected; it is read and dropped so that the connection stays open.
    socket.on('data', () => undefined);
    socket.on('error', (error) => {
      this.lastError = error;
    });
    socket.on('close', () => this.lost(socket));
  }

  /** The connection ended: what it had not handed to the kernel goes first on the next one. */
  private lost(socket: Socket): void {
    if (this.socket !== socket) return;
    const wasConnected = this.connected;
    this.socket = undefined;
    this.connected = false;
    this.draining = false;
    const unsent = this.inFlight.filter((chunk) => !chunk.done);
    this.inFlight = [];
    this.queue = [...unsent, ...this.queue];
    if (this.closed) return;
    if (!this.warned && (wasConnected || this.pendingBytes > 0 || this.lastError !== undefined)) {
      this.warned = true;
      const why = this.lastError !== undefined ? systemReason(this.lastError, 'address') : 'the server closed the connection';
      this.context.warn(`${this.options.label}: ${wasConnected ? 'lost the connection to' : 'cannot connect to'} ${this.where}: ${why}; trying again (messages wait meanwhile)`);
    }
    const delay = this.closing ? Math.min(this.backoff, 250) : this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private flush(): void {
    const socket = this.socket;
    if (!socket || !this.connected || this.draining) return;
    while (this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.inFlight.push(chunk);
      const more = socket.write(chunk.data, (error) => {
        if (!error) this.written(chunk);
      });
      if (!more) {
        this.draining = true;
        socket.once('drain', () => {
          if (this.socket !== socket) return;
          this.draining = false;
          this.flush();
        });
        return;
      }
    }
  }

  private written(chunk: Chunk): void {
    if (chunk.done) return;
    chunk.done = true;
    this.pendingBytes -= chunk.data.length;
    const at = this.inFlight.indexOf(chunk);
    if (at >= 0) this.inFlight.splice(at, 1);
    if (this.pendingBytes <= LOW_WATER) this.wakeRoom(false);
    if (this.pendingBytes === 0) {
      const waiters = this.emptyWaiters;
      this.emptyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private wakeRoom(all: boolean): void {
    if (!all && this.roomWaiters.length === 0) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Resolves when `promise` does or after `ms`, whichever comes first. */
function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Each frame after its big-endian length of `prefix` bytes, in one buffer; frames too long for the prefix are left out and returned. */
export function lengthPrefixed(frames: readonly (string | Buffer)[], prefix: 1 | 2 | 4 | 8): { data: Buffer; count: number; tooLong: number[] } {
  const buffers = frames.map((frame) => (typeof frame === 'string' ? Buffer.from(frame) : frame));
  const max = prefix === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * prefix) - 1;
  const tooLong: number[] = [];
  let size = 0;
  buffers.forEach((buffer, i) => {
    if (buffer.length > max) tooLong.push(i);
    else size += prefix + buffer.length;
  });
  const data = Buffer.allocUnsafe(size);
  let at = 0;
  buffers.forEach((buffer, i) => {
    if (buffer.length > max) return;
    if (prefix === 1) data[at] = buffer.length;
    else if (prefix === 2) data.writeUInt16BE(buffer.length, at);
    else if (prefix === 4) data.writeUInt32BE(buffer.length, at);
    else data.writeBigUInt64BE(BigInt(buffer.length), at);
    at += prefix;
    at += buffer.copy(data, at);
  });
  return { data, count: frames.length - tooLong.length, tooLong };
}
