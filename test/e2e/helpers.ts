import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'message-passing.js');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  /** Everything printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once `pattern` shows on the stream, rejects after `ms`. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp | string, ms?: number): Promise<void>;
  /** Resolves when the process has ended. */
  done: Promise<Finished>;
}

export interface StartOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  /** Kills the process (SIGKILL) after this many ms; the test then fails on its output. */
  timeout?: number;
  /** Program to run instead of message-passing (for peers such as Perl's message-pass). */
  command?: string;
}

/** Starts message-passing (or `command`) with `args`; stdin stays open unless `input` is given. */
export function start(args: readonly string[], options: StartOptions = {}): Running {
  const command = options.command ?? process.execPath;
  const argv = options.command ? [...args] : [BIN, ...args];
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  if (!options.env?.DEBUG) delete env.DEBUG;
  const child = spawn(command, argv, { cwd: options.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  const notify = () => waiters.forEach((w) => w());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; notify(); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; notify(); });
  child.stdin!.on('error', () => {}); // the program may exit before reading everything
  if (options.input !== undefined) child.stdin!.end(options.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 20_000);
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    done,
    waitFor(stream, pattern, ms = 10_000) {
      const seen = () => {
        const text = stream === 'stdout' ? stdout : stderr;
        return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
      };
      return new Promise<void>((resolve, reject) => {
        if (seen()) return resolve();
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${pattern} on ${stream}; stdout=${stdout.slice(-500)} stderr=${stderr.slice(-500)}`)), ms);
        const check = () => { if (seen()) { clearTimeout(t); resolve(); } };
        waiters.push(check);
        child.on('close', () => { clearTimeout(t); seen() ? resolve() : reject(new Error(`process ended before ${pattern} showed on ${stream}; stderr=${stderr.slice(-500)}`)); });
      });
    },
  };
}

/** Runs message-passing to completion. */
export function run(args: readonly string[], options: StartOptions = {}): Promise<Finished> {
  return start(args, { input: '', ...options }).done;
}

/** A fresh temporary folder, removed after the test file. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mp-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Ports handed out from below the kernel's ephemeral range (32768 and up): a port the kernel
 * picked for a listen on port 0 is free only until some outgoing connection takes it as its
 * local port, which made a later bind fail now and then. Each vitest worker (VITEST_POOL_ID,
 * 1 to maxWorkers) takes its ports from a block of its own, in turn, from a random start.
 */
const PORT_BLOCK = 2500;
const firstPort = 20_000 + ((Number(process.env.VITEST_POOL_ID ?? 1) - 1) % 4) * PORT_BLOCK;
let portTurn = Math.floor(Math.random() * PORT_BLOCK);

/** A port of 127.0.0.1 free for TCP and UDP a moment ago, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORT_BLOCK; tries++) {
    const port = firstPort + (portTurn++ % PORT_BLOCK);
    if ((await canBind(port, 'tcp')) && (await canBind(port, 'udp'))) return port;
  }
  throw new Error(`no free port in ${firstPort} to ${firstPort + PORT_BLOCK - 1}`);
}

function canBind(port: number, protocol: 'tcp' | 'udp'): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'tcp') {
      const server = createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    } else {
      const socket = createSocket('udp4');
      socket.unref();
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    }
  });
}

/** Parses NDJSON text into values, ignoring a trailing newline. */
export function lines(text: string): unknown[] {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `condition` holds, polling; fails naming `what` after `ms`. */
export async function until(condition: () => boolean, what = 'a condition', ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; !condition(); await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** SIGTERM, then the process's end. */
export function stop(running: Running): Promise<Finished> {
  running.child.kill('SIGTERM');
  return running.done;
}

/**
 * `start` for tests that run several processes at once: every process started
 * through the returned function is killed after each test, so a failed test
 * leaves no stray peer bound to a port.
 */
export function tracked(): (args: readonly string[], options?: StartOptions) => Running {
  const running: Running[] = [];
  afterEach(() => {
    for (const r of running.splice(0)) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  });
  return (args, options) => {
    const r = start(args, options);
    running.push(r);
    return r;
  };
}

/** Error records (or any NDJSON objects) from a process's output. */
export const records = (text: string) => lines(text) as Array<Record<string, unknown>>;

/** Peak resident memory of a running process, in bytes (Linux). */
export function peakRss(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

/** Resolves once something listens on the port (a connection that sends nothing and closes is not a record). */
export async function listening(port: number): Promise<void> {
  for (const deadline = Date.now() + 15_000; ; await sleep(50)) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
  }
}

/** A TCP connection to 127.0.0.1:`port`, once established. */
export function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** A ZeroMQ TCP endpoint on 127.0.0.1. */
export const endpoint = (port: number) => `tcp://127.0.0.1:${port}`;
export const zmqInput = (options: object) => ['--input', 'ZeroMQ', '--input_options', JSON.stringify(options)];
export const zmqOutput = (options: object) => ['--output', 'ZeroMQ', '--output_options', JSON.stringify(options)];
export const fileOutput = (filename: string) => ['--output', 'File', '--output_options', JSON.stringify({ filename })];

/** Values as NDJSON text, one per line, each line ended. */
export const ndjson = (values: readonly unknown[]) => values.map((v) => JSON.stringify(v) + '\n').join('');
/** The integers from `from` to `to`, both included. */
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A user filter, written to `dir`/`name`; returns its path. */
export function filterFile(dir: string, name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

/** A filter's source that spends `options.us` microseconds per message, busy. */
export const SPIN_FILTER = 'export default (message, options) => { const end = performance.now() + options.us / 1000; while (performance.now() < end); return message; };\n';
