// Network inputs listen on loopback unless an address says otherwise: what the
// kernel reports as listening (/proc/net/tcp, /proc/net/udp), not what the
// program says it did.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { freePort, start, stop } from './helpers.js';

/** Addresses with a socket bound to `port`, IPv4 and IPv6: listening (TCP state 0A) or bound (UDP). */
function boundTo(protocol: 'tcp' | 'udp', port: number): string[] {
  const found: string[] = [];
  for (const table of [protocol, `${protocol}6`]) {
    for (const line of readFileSync(`/proc/net/${table}`, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || (protocol === 'tcp' && state !== '0A')) continue;
      const [hex, portHex] = local.split(':');
      if (parseInt(portHex!, 16) !== port) continue;
      // IPv4 in host byte order (little-endian here); of IPv6 only the addresses these tests expect.
      if (hex!.length === 8) found.push(Buffer.from(hex!, 'hex').reverse().join('.'));
      else found.push(/^0+$/.test(hex!) ? '::' : /^0{24}01000000$/.test(hex!) ? '::1' : hex!);
    }
  }
  return found;
}

const LOOPBACK = '127.0.0.1';
const EVERY_INTERFACE = '0.0.0.0';
// A stats line shows once the program runs, its signal handlers in place (a signal before
// that, while it binds, ends it at once, as it would any program).
const input = (name: string, options: object) => ['--input', name, '--input_options', JSON.stringify(options), '--output', 'Null', '--stats', '0.05'];

describe.concurrent('network inputs bind to loopback by default', () => {
  it.each([
    ['TCP, a port alone', 'tcp', (port: number) => input('TCP', { bind: String(port) }), LOOPBACK],
    // Node listens on IPv6's any address, which takes IPv4 connections too, when the host has IPv6.
    ['TCP, *:PORT', 'tcp', (port: number) => input('TCP', { bind: `*:${port}` }), expect.stringMatching(/^(::|0\.0\.0\.0)$/)],
    ['UDP, no hostname', 'udp', (port: number) => input('UDP', { port }), LOOPBACK],
    ['UDP, hostname 0.0.0.0', 'udp', (port: number) => input('UDP', { hostname: EVERY_INTERFACE, port }), EVERY_INTERFACE],
    ['PythonLogging, UDP as a port alone and no TCP', 'udp', (port: number) => input('PythonLogging', { bind: '', udp: String(port) }), LOOPBACK],
  ] as const)('%s', async (_name, protocol, args, expected) => {
    const port = await freePort();
    const tool = start(args(port));
    await tool.waitFor('stderr', 'stats');
    expect(boundTo(protocol, port)).toEqual([expected]);
    const { code, stderr } = await stop(tool);
    expect(code, stderr).toBe(0);
  });

  it('PythonLogging with no options: TCP on 127.0.0.1:9020 (DEFAULT_TCP_LOGGING_PORT), nothing else', async () => {
    const tool = start(input('PythonLogging', {}));
    await tool.waitFor('stderr', 'stats');
    expect(boundTo('tcp', 9020)).toEqual([LOOPBACK]);
    expect(boundTo('udp', 9021)).toEqual([]);
    const { code, stderr } = await stop(tool);
    expect(code, stderr).toBe(0);
  });
});
