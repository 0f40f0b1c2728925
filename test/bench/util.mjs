// Helpers shared by the ZeroMQ benchmarks (zeromq.mjs, soak.mjs).
import { createServer } from 'node:net';

export const fmt = (n) => Math.round(n).toLocaleString('en-US');
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const endpoint = (port) => `tcp://127.0.0.1:${port}`;

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
