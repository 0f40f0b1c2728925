// What the ZeroMQ input and output share: endpoint options, their checks, and
// turning libzmq's errno codes into errors a person can act on.
import { systemReason } from './system-errors.js';

/** zeromq.js, loaded only when a ZeroMQ plugin is used (it is a native module). */
export type ZeroMQ = typeof import('zeromq');

export async function loadZeroMQ(): Promise<ZeroMQ> {
  try {
    return await import('zeromq');
  } catch (error) {
    throw new SocketError(`cannot load the zeromq module (${systemReason(error)}); run 'npm install' where message-passing is installed`, false);
  }
}

/** A socket that cannot be set up; `misuse` when what the user gave is malformed (a usage error). */
export class SocketError extends Error {
  constructor(
    message: string,
    readonly misuse: boolean,
  ) {
    super(message);
  }
}

/** Options of every ZeroMQ socket, with Perl's Message::Passing::ZeroMQ names. */
export const endpointOptions = {
  connect: {
    type: 'strings',
    description:
      'Endpoint to connect to, or a list of them, e.g. "tcp://127.0.0.1:5552". ZeroMQ connects in the background and reconnects to a peer that restarts. Give exactly one of connect and socket_bind.',
    example: 'tcp://127.0.0.1:5552',
  },
  socket_bind: {
    type: 'strings',
    aliases: ['bind'],
    description:
      'Endpoint to bind and accept connections on, or a list of them, e.g. "tcp://*:5552" (all interfaces) or "tcp://127.0.0.1:5552". Give exactly one of connect and socket_bind.',
    example: 'tcp://*:5552',
  },
  socket_hwm: {
    type: 'integer',
    min: 0,
    default: 10000,
    description: 'High-water mark: how many messages ZeroMQ queues per peer before it pushes back (PUSH, PULL) or drops (PUB); 0 means no limit.',
  },
} as const;

/** Transports libzmq knows; whether this build supports one is its own answer (EPROTONOSUPPORT). */
const TRANSPORTS = ['tcp', 'ipc', 'inproc', 'pgm', 'epgm', 'tipc', 'vmci', 'ws', 'wss'];

const ENDPOINT_HINT = 'expected TRANSPORT://ADDRESS such as tcp://127.0.0.1:5552, tcp://*:5552 or ipc:///tmp/feed.sock';

/** What is wrong with one endpoint, or nothing: caught before any socket exists. */
export function endpointProblem(endpoint: string, binding: boolean): string | undefined {
  const match = /^([A-Za-z0-9+.-]+):\/\/(.+)$/.exec(endpoint);
  if (!match) return `malformed endpoint '${endpoint}' (${ENDPOINT_HINT})`;
  const transport = match[1]!.toLowerCase();
  const address = match[2]!;
  if (!TRANSPORTS.includes(transport)) {
    return `unknown transport '${match[1]}' in '${endpoint}' (ZeroMQ knows ${TRANSPORTS.join(', ')}; ${ENDPOINT_HINT})`;
  }
  if (transport === 'tcp' || transport === 'ws' || transport === 'wss') {
    // A connect may name a source address first: "tcp://eth0:0;192.168.1.17:5555".
    const target = address.slice(address.lastIndexOf(';') + 1);
    const hostPort = /^(.+):([^:\]/]+)(\/.*)?$/.exec(target);
    if (!hostPort) return `malformed endpoint '${endpoint}': no port (${ENDPOINT_HINT})`;
    const port = hostPort[2]!;
    if (port === '*' || port === '0') {
      if (!binding) return `endpoint '${endpoint}': a connect needs a port number, not '${port}'`;
    } else if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return `endpoint '${endpoint}': port must be a number from 1 to 65535${binding ? " (or '*' for any free port)" : ''}`;
    }
    if (!binding && hostPort[1] === '*') return `endpoint '${endpoint}': a connect needs a host name or address, not '*'`;
  }
  return undefined;
}

/** The cross-field rule both plugins share: exactly one of connect and socket_bind, each endpoint well-formed. */
export function checkEndpoints(options: { connect?: readonly string[] | undefined; socket_bind?: readonly string[] | undefined }): string | undefined {
  const { connect, socket_bind: bind } = options;
  if (connect && bind) return 'give either connect or socket_bind, not both (a socket here either connects or binds)';
  if (!connect && !bind) return 'give connect (e.g. {connect: "tcp://127.0.0.1:5552"}) or socket_bind (e.g. {socket_bind: "tcp://*:5552"})';
  for (const endpoint of connect ?? []) {
    const problem = endpointProblem(endpoint, false);
    if (problem) return problem;
  }
  for (const endpoint of bind ?? []) {
    const problem = endpointProblem(endpoint, true);
    if (problem) return problem;
  }
  return undefined;
}

interface ErrnoLike {
  code?: unknown;
  message?: unknown;
}

/** libzmq's answer to a bind or connect, in words. */
export function endpointError(verb: 'bind' | 'connect', endpoint: string, error: unknown): SocketError {
  const code = typeof (error as ErrnoLike)?.code === 'string' ? ((error as ErrnoLike).code as string) : undefined;
  const what = `cannot ${verb} ${endpoint}`;
  switch (code) {
    case 'EINVAL':
      return new SocketError(`${what}: malformed endpoint (${ENDPOINT_HINT})`, true);
    case 'EPROTONOSUPPORT':
      return new SocketError(`${what}: transport not supported by this build of libzmq (${ENDPOINT_HINT})`, true);
    case 'ENODEV':
      return new SocketError(`${what}: no such network interface (use an address such as tcp://127.0.0.1:PORT or tcp://*:PORT)`, true);
    default:
      return new SocketError(`${what}: ${systemReason(error, 'address')}`, false);
  }
}

/** The shape of the two zeromq.js methods used here, common to every socket type. */
interface Attachable {
  bind(address: string): Promise<void>;
  connect(address: string): void;
  close(): void;
}

/** Binds or connects `socket` to every endpoint; on failure closes it and throws an error from endpointError. */
export async function attach(
  socket: Attachable,
  options: { connect?: readonly string[] | undefined; socket_bind?: readonly string[] | undefined },
): Promise<void> {
  try {
    for (const endpoint of options.socket_bind ?? []) {
      await socket.bind(endpoint).catch((error: unknown) => {
        throw endpointError('bind', endpoint, error);
      });
    }
    for (const endpoint of options.connect ?? []) {
      try {
        socket.connect(endpoint);
      } catch (error) {
        throw endpointError('connect', endpoint, error);
      }
    }
  } catch (error) {
    socket.close();
    throw error;
  }
}

/** "tcp://a:1" or "tcp://a:1, tcp://b:2", for messages. */
export function endpointList(options: { connect?: readonly string[] | undefined; socket_bind?: readonly string[] | undefined }): string {
  return (options.connect ?? options.socket_bind ?? []).join(', ');
}

