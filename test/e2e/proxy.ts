// A TCP proxy on 127.0.0.1 in front of a real server (Redis, PostgreSQL), for
// faults a test decides: every connection cut at once, the server unreachable
// for a while, or one connection dropped when the server's answer holds given
// bytes (that answer lost on the way back).
import { createServer, Socket, type Server } from 'node:net';
import { afterAll } from 'vitest';
import { freePort } from './helpers.js';

interface Link {
  client: Socket;
  server: Socket;
}

export class FaultProxy {
  private server: Server | undefined;
  private readonly links = new Set<Link>();
  /** Connections accepted so far. */
  accepted = 0;
  /** Everything the server sent that reached the clients (latin1), to wait for an answer to arrive. */
  answers = '';
  /** Called with each chunk the server sends; returning true drops the link instead of forwarding the chunk. */
  dropAnswer: ((chunk: Buffer) => boolean) | undefined;

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  /** A proxy to 127.0.0.1:targetPort, closed after the test file. */
  static async start(targetPort: number): Promise<FaultProxy> {
    const proxy = new FaultProxy(await freePort(), targetPort);
    await proxy.up();
    afterAll(() => proxy.close());
    return proxy;
  }

  /** Accepts connections (again). */
  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Refuses new connections and cuts the open ones: the server is unreachable until up(). */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.cut();
    if (server) await new Promise((resolve) => server.close(resolve));
  }

  /** Cuts every open connection (as CLIENT KILL or pg_terminate_backend would, without a goodbye). */
  cut(): void {
    for (const link of this.links) {
      link.client.destroy();
      link.server.destroy();
    }
    this.links.clear();
  }

  async close(): Promise<void> {
    await this.down();
  }

  private accept(client: Socket): void {
    this.accepted++;
    const server = new Socket();
    const link: Link = { client, server };
    this.links.add(link);
    const end = () => {
      this.links.delete(link);
      client.destroy();
      server.destroy();
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    server.connect(this.targetPort, '127.0.0.1');
    client.on('data', (chunk: Buffer) => server.write(chunk));
    server.on('data', (chunk: Buffer) => {
      if (this.dropAnswer?.(chunk)) {
        end();
        return;
      }
      this.answers += chunk.toString('latin1');
      client.write(chunk);
    });
  }
}
