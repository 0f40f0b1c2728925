// What the delivery tests share: processes whose stdout is kept as bytes (or left
// to the test to read at its own pace), the --stats end figures, error records,
// RSS sampling from /proc, and the size of the kernel's TCP buffers.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll } from 'vitest';
import { BIN, ROOT } from './helpers.js';

export { endpoint, fileOutput, zmqInput, zmqOutput } from './helpers.js';

export interface Stats {
  in: number;
  out: number;
  dropped: number;
  errors: number;
}

/** `queued` shows while an output holds messages it has not handed on. */
const STATS_LINE = /^message-passing: stats in=(\d+) created=\d+ out=(\d+)(?: queued=\d+)? dropped=(\d+) errors=(\d+) /;

/** The figures of the last --stats line in `stderr` (the end figures once the process has ended). */
export function lastStats(stderr: string): Stats | undefined {
  let found: Stats | undefined;
  for (const line of stderr.split('\n')) {
    const match = STATS_LINE.exec(line);
    if (match) found = { in: Number(match[1]), out: Number(match[2]), dropped: Number(match[3]), errors: Number(match[4]) };
  }
  return found;
}

export interface ErrorRecordSeen {
  error: string;
  reason: string;
  source: string;
  frame?: string;
  encoding?: string;
}

/** The error records on stderr (one JSON object per line), leaving out stats and other lines. */
export function errorRecords(stderr: string): ErrorRecordSeen[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ErrorRecordSeen);
}

/** Lines of `stderr` that are neither error records nor stats: what a person would be told. */
export function otherLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{') && !STATS_LINE.test(line));
}

export interface Process {
  child: ChildProcess;
  readonly pid: number;
  /** Everything written on stdout so far (empty when the test reads stdout itself). */
  readonly stdout: Buffer;
  readonly stderr: string;
  /** Resolves once the last --stats line satisfies `test` (a readiness or progress signal). */
  waitForStats(test: (stats: Stats) => boolean, what: string, ms?: number): Promise<Stats>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface LaunchOptions {
  /** Leave stdout unread: the test reads `child.stdout` at its own pace. */
  readStdoutItself?: boolean;
  /** Kills the process (SIGKILL) after this many ms, so a hang fails the test rather than the run. */
  timeout?: number;
}

// Tests run concurrently within a file: leftovers (a test that failed half-way) are ended with the file.
const launched: Process[] = [];
afterAll(() => {
  for (const p of launched.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

/** Starts message-passing with `args`; stdin stays open; ended by SIGKILL after the test file if still running. */
export function launch(args: readonly string[], options: LaunchOptions = {}): Process {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.DEBUG;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stdout: Buffer | undefined;
  let stderr = '';
  const watchers = new Set<() => void>();
  if (!options.readStdoutItself) child.stdout!.on('data', (chunk: Buffer) => { chunks.push(chunk); stdout = undefined; });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    for (const watch of watchers) watch();
  });
  child.stdin!.on('error', () => undefined); // it may end before reading everything
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 60_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const watch of watchers) watch();
      resolve({ code, signal });
    });
  });
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  const waitUntil = <T>(probe: () => T | undefined, what: string, ms: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const value = probe();
        if (value !== undefined) finish(() => resolve(value));
        else if (ended()) finish(() => reject(new Error(`process ended before ${what}; stderr=${stderr.slice(-800)}`)));
      };
      const finish = (settle: () => void) => {
        clearTimeout(deadline);
        watchers.delete(check);
        settle();
      };
      const deadline = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${what}; stderr=${stderr.slice(-800)}`))), ms);
      watchers.add(check);
      check();
    });
  const process_: Process = {
    child,
    pid: child.pid!,
    get stdout() {
      return (stdout ??= Buffer.concat(chunks));
    },
    get stderr() {
      return stderr;
    },
    waitForStats: (test, what, ms = 20_000) =>
      waitUntil(() => {
        const stats = lastStats(stderr);
        return stats && test(stats) ? stats : undefined;
      }, what, ms),
    done,
  };
  launched.push(process_);
  return process_;
}

/** SIGTERM, then the end of the process. */
export async function terminate(p: Process) {
  p.child.kill('SIGTERM');
  return p.done;
}

/** Waits until `condition` holds, checking every 20 ms; fails with `what` after `ms`. */
export async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resident memory of a process in KiB, or undefined once it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the RSS of named processes every `everyMs`, keeping each one's peak (KiB). */
export function sampleRss(processes: Record<string, number>, everyMs = 50): { peaks: Record<string, number>; stop(): void } {
  const peaks: Record<string, number> = Object.fromEntries(Object.keys(processes).map((name) => [name, 0]));
  const take = () => {
    for (const [name, pid] of Object.entries(processes)) peaks[name] = Math.max(peaks[name]!, rssKiB(pid) ?? 0);
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    peaks,
    stop() {
      clearInterval(timer);
      take();
    },
  };
}

/**
 * The most bytes the kernel may hold for one TCP connection in one direction
 * (read from /proc/sys/net/ipv4/tcp_{wmem,rmem}, third field: the autotuning
 * ceiling); Linux's usual defaults when the files cannot be read.
 */
export function tcpBufferCeiling(): { send: number; receive: number } {
  const third = (file: string, fallback: number) => {
    try {
      return Number(readFileSync(file, 'utf8').trim().split(/\s+/)[2]) || fallback;
    } catch {
      return fallback;
    }
  };
  return { send: third('/proc/sys/net/ipv4/tcp_wmem', 4_194_304), receive: third('/proc/sys/net/ipv4/tcp_rmem', 6_291_456) };
}

/** Bytes libzmq batches per connection on each side before the kernel sees them (ZMQ_OUT_BATCH_SIZE, ZMQ_IN_BATCH_SIZE). */
export const ZMQ_BATCH_BYTES = 8192;

/** Bytes one message of `size` bytes takes on the wire in ZMTP 3 (a 2-byte header below 256 bytes, 9 above). */
export const wireSize = (size: number) => size + (size < 256 ? 2 : 9);

/** One line for the record when FIGURES=1: what a run measured (losses, peaks). */
export function figure(text: string): void {
  if (process.env.FIGURES) process.stdout.write(`figure: ${text}\n`);
}
