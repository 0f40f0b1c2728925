// The process flags Perl's message-pass has: --daemonize, --pid_file, --user and
// --io_priority. Loaded only when one of them is given.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import type { Settings } from './args.js';
import { describe, RuntimeError, UsageError } from '../core/errors.js';
import { findEntry } from './registry.js';

/**
 * Set in the daemon's environment: the descriptor of the pipe to the command
 * that started it, which waits there for `ready` or the reason it could not start.
 */
const READY_FD = 'MESSAGE_PASSING_DAEMON_FD';

const readyFd = (() => {
  const fd = Number(process.env[READY_FD]);
  // Not for the daemon's own children (a user filter may start processes).
  delete process.env[READY_FD];
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
})();
let toParent = readyFd;

/** This process is the daemon a --daemonize started (the command line said --daemonize already). */
export function isDaemon(): boolean {
  return readyFd !== undefined;
}

/**
 * Where a line for a person goes while the daemon starts: to the command that
 * started it, which prints it (the daemon's own stderr is /dev/null).
 */
export function startupLine(line: string): boolean {
  if (toParent === undefined) return false;
  try {
    writeSync(toParent, line);
  } catch {
    // The command is gone (killed while it waited): nobody to tell.
  }
  return true;
}

/** The pipeline runs: the command that started the daemon returns 0. */
export function started(): void {
  if (toParent === undefined) return;
  startupLine('ready\n');
  try {
    closeSync(toParent);
  } catch {
    // Already closed.
  }
  toParent = undefined;
}

/** Usage errors that --daemonize makes out of an otherwise good command line. */
export function checkDaemonize(settings: Settings): void {
  if (!settings.daemonize) return;
  if (findEntry('input', settings.input.name)?.name === 'STDIN') {
    throw new UsageError('--daemonize: a daemon reads /dev/null as its standard input; name an input such as File, ZeroMQ or TCP (--input)');
  }
  if (findEntry('output', settings.output.name)?.name === 'STDOUT') {
    throw new UsageError('--daemonize: a daemon writes its standard output to /dev/null; name an output such as File, ZeroMQ or TCP (--output), or Null to discard');
  }
}

/**
 * The command's side of --daemonize: starts the same command line again as a
 * daemon (a new session, its standard streams on /dev/null, this working
 * folder) and waits until it says it runs (status 0) or why it cannot (its
 * message and status). The daemon tells through a pipe of its own.
 */
export async function detach(): Promise<number> {
  const args = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...process.env, [READY_FD]: '3' },
  });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
  const spawnFailed = new Promise<never>((_, reject) => child.on('error', (error) => reject(new RuntimeError(`--daemonize: cannot start the daemon: ${describe(error)}`))));
  let said = '';
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  pipe.setEncoding('utf8');
  pipe.on('data', (text: string) => (said += text));
  await Promise.race([new Promise<void>((resolve) => pipe.on('close', () => resolve())), spawnFailed]);
  if (said.endsWith('ready\n')) {
    process.stderr.write(said.slice(0, -'ready\n'.length));
    child.unref();
    return 0;
  }
  const code = await exited;
  process.stderr.write(said || `message-passing: the daemon ended at start with status ${code}\n`);
  return code === 0 ? 1 : code;
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 0;
}

/** Whom --user names: found before anything starts, so a typo starts nothing. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
}

export function lookUpUser(user: string): Account {
  if (typeof process.setuid !== 'function') throw new UsageError('--user works on Unix systems only');
  // `id` asks the system's user databases (/etc/passwd, LDAP, ...), which Node cannot.
  const answer = spawnSync('id', ['--', user], { encoding: 'utf8' });
  if (answer.error) throw new RuntimeError(`--user ${user}: cannot look the user up: id: ${describe(answer.error)}`);
  const found = /^uid=(\d+)\(([^)]*)\) gid=(\d+)/.exec(answer.stdout);
  if (answer.status !== 0 || !found) throw new UsageError(`--user ${user}: no such user`);
  return { uid: Number(found[1]), name: found[2]!, gid: Number(found[3]) };
}

/** Becomes `account`: its groups, its group, then itself (after which nothing else may be changed). */
export function becomeUser(account: Account): void {
  try {
    if (process.getuid!() === account.uid && process.getgid!() === account.gid) return;
    // Its supplementary groups (initgroups is missing from newer typings; setgroups to its group alone otherwise).
    const withGroups = process as unknown as { initgroups?: (user: string, extraGroup: number) => void };
    if (withGroups.initgroups) withGroups.initgroups(account.name, account.gid);
    else process.setgroups!([account.gid]);
    process.setgid!(account.gid);
    process.setuid!(account.uid);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EPERM' ? 'only root may change the user it runs as' : describe(error);
    throw new RuntimeError(`--user ${account.name}: cannot become that user: ${why}`);
  }
}

/**
 * --io_priority as Perl sets it (ioprio_set, the class at level 0), through
 * ionice, for every thread this process has so far (later threads take it from
 * the one that starts them). Node has no call for it.
 */
export function setIoPriority(priority: NonNullable<Settings['ioPriority']>): void {
  if (process.platform !== 'linux') throw new RuntimeError(`--io_priority ${priority}: I/O priorities are a Linux feature (ioprio_set); this is ${process.platform}`);
  const ioniceClass = { none: '0', rt: '1', be: '2', idle: '3' }[priority];
  let threads: string[];
  try {
    threads = readdirSync('/proc/self/task');
  } catch {
    threads = [String(process.pid)];
  }
  const level = priority === 'rt' || priority === 'be' ? ['-n', '0'] : [];
  const done = spawnSync('ionice', ['-c', ioniceClass, ...level, '-p', ...threads], { encoding: 'utf8' });
  if (done.error) {
    const missing = (done.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new RuntimeError(`--io_priority ${priority}: cannot set the I/O priority: ${missing ? 'ionice is not installed (it comes with util-linux)' : describe(done.error)}`);
  }
  if (done.status !== 0) {
    const said = done.stderr.trim().replace(/^ionice: /, '');
    const hint = priority === 'rt' && /not permitted/i.test(said) ? ' (the real-time class needs root, or CAP_SYS_ADMIN)' : '';
    throw new RuntimeError(`--io_priority ${priority}: cannot set the I/O priority: ${said || `ionice ended with status ${done.status}`}${hint}`);
  }
}

/**
 * Writes this process's id to `file`, created anew (so two starting at once
 * cannot both take it). A file naming a running process stops the start; one
 * left by a process that died is replaced. Removed at exit if it still holds
 * this id.
 */
export function writePidFile(file: string): void {
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || attempt > 0) throw new RuntimeError(`--pid_file ${file}: cannot create it (${code ?? describe(error)})`);
      const holder = pidIn(file);
      if (holder !== undefined && holder !== process.pid && isRunning(holder)) {
        throw new RuntimeError(`--pid_file ${file}: process ${holder} is running (another message-passing?); stop it, or remove the file if it is not one`);
      }
      try {
        unlinkSync(file);
      } catch (removal) {
        if ((removal as NodeJS.ErrnoException).code !== 'ENOENT') throw new RuntimeError(`--pid_file ${file}: cannot replace the stale file (${(removal as NodeJS.ErrnoException).code ?? describe(removal)})`);
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    process.on('exit', () => removePidFile(file));
    return;
  }
}

function removePidFile(file: string): void {
  try {
    if (pidIn(file) === process.pid) unlinkSync(file);
  } catch {
    // After --user, the folder may not be that user's to change: the file stays, and names a process that is gone.
  }
}

function pidIn(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
