// Perl's message-pass flags for the process and the error chain: --error_encoder,
// --daemonize, --pid_file, --user, --io_priority.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pickle from '../../src/codecs/pickle.js';
import { BIN, lines, run, start, tempDir, until, type Finished } from './helpers.js';

const dir = tempDir();
// Other users may enter it (for --user nobody) but not list or change it.
chmodSync(dir, 0o711);
writeFileSync(join(dir, 'who.mjs'), 'export default (m) => ({ ...m, uid: process.getuid(), gid: process.getgid() });\n');
const runHere = (args: string[], input = '') => run(args, { cwd: dir, input });

const linux = process.platform === 'linux';
const root = process.getuid?.() === 0;
/** nobody's uid and gid, where there is one. */
const nobody = (() => {
  const found = /^uid=(\d+)\(\w+\) gid=(\d+)/.exec(spawnSync('id', ['nobody'], { encoding: 'utf8' }).stdout ?? '');
  return found ? { uid: Number(found[1]), gid: Number(found[2]) } : undefined;
})();
const hasIonice = linux && spawnSync('ionice', ['-p', String(process.pid)]).status === 0;

/** Runs message-passing as another user (needs root): nobody, to see what a user without privileges gets. */
function runAs(user: { uid: number; gid: number }, args: string[], input = ''): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, uid: user.uid, gid: user.gid, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(input);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.concurrent('--error_encoder', () => {
  it('the error chain has an encoder of its own: Pickle writes each record as a pickle', async () => {
    const { status, stdout, stderr } = spawnSync(process.execPath, [BIN, '--error_encoder', 'Pickle', '--error_encoder_options', '{}'], { input: '{"n":1}\nnot json\n' });
    expect(status).toBe(0);
    expect(stdout.toString()).toBe('{"n":1}\n');
    let reason = '';
    try {
      JSON.parse('not json');
    } catch (error) {
      reason = (error as Error).message;
    }
    const codec = await pickle.create({}, {});
    const record = codec.encode({ error: 'decode', reason, source: 'stdin:2', frame: 'not json' }) as Buffer;
    expect(stderr.equals(Buffer.concat([record, Buffer.from('\n')]))).toBe(true);
    expect(codec.decode(stderr.subarray(0, -1))).toEqual({ error: 'decode', reason, source: 'stdin:2', frame: 'not json' });
  });

  it('its options are validated against it: a usage error naming the flag and the encoder', async () => {
    const { code, stderr } = await run(['--error_encoder', 'json', '--error_encoder_options', '{pretty: true}']);
    expect(code).toBe(2);
    expect(stderr).toBe("message-passing: --error_encoder JSON: unknown option 'pretty' (it takes no options)\n");
    const unknown = await run(['--error_encoder', 'Pickel']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("message-passing: unknown decoder/encoder 'Pickel' (did you mean 'Pickle'?)\n");
  });
});

describe.concurrent('--pid_file', () => {
  it('holds the process id while it runs, is removed at exit, and a second start with it is refused', async () => {
    const file = join(dir, 'running.pid');
    const first = start(['--pid_file', file], { cwd: dir });
    await until(() => existsSync(file) && readFileSync(file, 'utf8') === `${first.child.pid}\n`, 'the pid file');
    const second = await runHere(['--pid_file', file], '{"n":1}\n');
    expect(second.code).toBe(1);
    expect(second.stdout).toBe('');
    expect(second.stderr).toBe(`message-passing: --pid_file ${file}: process ${first.child.pid} is running (another message-passing?); stop it, or remove the file if it is not one\n`);
    expect(readFileSync(file, 'utf8')).toBe(`${first.child.pid}\n`);
    first.child.stdin!.end('{"n":2}\n');
    const done = await first.done;
    expect(done).toMatchObject({ code: 0, stdout: '{"n":2}\n', stderr: '' });
    expect(existsSync(file)).toBe(false);
  });

  it('a file left by a process that is gone is replaced', async () => {
    const file = join(dir, 'stale.pid');
    const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(file, `${gone}\n`);
    const { code, stdout, stderr } = await runHere(['--pid_file', file, '--filter', './who.mjs'], '{"n":1}\n');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toHaveLength(1);
    expect(existsSync(file)).toBe(false);
  });

  it('a file that cannot be created is a clear error, nothing started', async () => {
    const { code, stdout, stderr } = await runHere(['--pid_file', join(dir, 'missing', 'x.pid')], '{"n":1}\n');
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expect(stderr).toBe(`message-passing: --pid_file ${join(dir, 'missing', 'x.pid')}: cannot create it (ENOENT)\n`);
  });
});

describe.concurrent('--daemonize', () => {
  it.skipIf(!linux)('returns once the daemon runs: a new session, standard streams on /dev/null; it works, and stops on SIGTERM, removing its pid file', async () => {
    const input = join(dir, 'daemon-in.log');
    const output = join(dir, 'daemon-out.log');
    const pidFile = join(dir, 'daemon.pid');
    writeFileSync(input, '');
    const args = ['--daemonize', '--pid_file', pidFile, '--input', 'File', '--input_options', JSON.stringify({ filename: input, follow: true, poll_interval: 50 })];
    const started = await runHere([...args, '--output', 'File', '--output_options', JSON.stringify({ filename: output })]);
    expect(started).toMatchObject({ code: 0, stdout: '', stderr: '' });
    // The pid file is written before the command returns.
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      expect(isRunning(pid)).toBe(true);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command's name: state, ppid, pgrp, session.
      const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect(Number(session)).toBe(pid);
      expect(Number(pgrp)).toBe(pid);
      for (const fd of [0, 1, 2]) expect(readlinkSync(`/proc/${pid}/fd/${fd}`)).toBe('/dev/null');
      appendFileSync(input, '{"n":1}\n');
      await until(() => existsSync(output) && readFileSync(output, 'utf8') === '{"n":1}\n', 'the daemon to copy a line');
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    await until(() => !isRunning(pid), 'the daemon to stop');
    expect(existsSync(pidFile)).toBe(false);
  });

  it('a daemon that cannot start: the command prints why and ends with its status', async () => {
    const args = ['--daemonize', '--input', 'File', '--input_options', JSON.stringify({ filename: join(dir, 'x.log'), follow: true })];
    const missing = await runHere([...args, '--output', 'File', '--output_options', JSON.stringify({ filename: join(dir, 'no', 'out.log') })]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^message-passing: File output: cannot open .*\/no\/out\.log for writing: its folder .* does not exist/);
    const typo = await runHere([...args, '--output', 'File', '--output_options', '{filenme: "x"}']);
    expect(typo).toMatchObject({ code: 2, stderr: "message-passing: --output File: unknown option 'filenme' (did you mean 'filename'?)\n" });
  });

  it('with STDIN or STDOUT, which would be /dev/null, is a usage error', async () => {
    const withStdin = await runHere(['--daemonize', '--output', 'Null']);
    expect(withStdin).toMatchObject({ code: 2, stderr: expect.stringMatching(/^message-passing: --daemonize: a daemon reads \/dev\/null as its standard input; name an input/) });
    const withStdout = await runHere(['--daemonize', '--input', 'File', '--input_options', '{filename: "x.log"}']);
    expect(withStdout).toMatchObject({ code: 2, stderr: expect.stringMatching(/^message-passing: --daemonize: a daemon writes its standard output to \/dev\/null; name an output/) });
  });
});

describe.concurrent('--user', () => {
  it.skipIf(!root || !nobody)('as root: becomes the user once the output file is open, before reading', async () => {
    const output = join(dir, 'as-nobody.ndjson');
    // The folder lets nobody in but not create files: the output was opened as root.
    const { code, stderr } = await runHere(['--user', 'nobody', '--filter', './who.mjs', '--output', 'File', '--output_options', JSON.stringify({ filename: output })], '{"n":1}\n');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(readFileSync(output, 'utf8'))).toEqual([{ n: 1, uid: nobody!.uid, gid: nobody!.gid }]);
  });

  it.skipIf(!root || !nobody)('without root it cannot: status 1 and why, nothing read', async () => {
    const { code, stdout, stderr } = await runAs(nobody!, ['--user', 'root'], '{"n":1}\n');
    expect(stdout).toBe('');
    expect(stderr).toBe('message-passing: --user root: cannot become that user: only root may change the user it runs as\n');
    expect(code).toBe(1);
  });

  it('a user that does not exist is a usage error', async () => {
    const { code, stdout, stderr } = await runHere(['--user', 'no-such-user-for-mp'], '{"n":1}\n');
    expect(stdout).toBe('');
    expect(stderr).toBe('message-passing: --user no-such-user-for-mp: no such user\n');
    expect(code).toBe(2);
  });
});

describe.concurrent('--io_priority', () => {
  it.skipIf(!hasIonice)('sets the class of every thread, in any case given', async () => {
    const running = start(['--io_priority', 'IDLE'], { cwd: dir });
    running.child.stdin!.write('"ready"\n');
    await running.waitFor('stdout', '"ready"');
    const pid = running.child.pid!;
    const threads = readdirSync(`/proc/${pid}/task`);
    expect(threads.length).toBeGreaterThan(1);
    for (const thread of threads) expect(spawnSync('ionice', ['-p', thread], { encoding: 'utf8' }).stdout.trim()).toBe('idle');
    running.child.stdin!.end();
    expect(await running.done).toMatchObject({ code: 0, stderr: '' });
  });

  it.skipIf(!hasIonice || !root || !nobody)('rt without root: status 1 and why', async () => {
    const { code, stderr } = await runAs(nobody!, ['--io_priority', 'rt'], '{"n":1}\n');
    expect(stderr).toBe('message-passing: --io_priority rt: cannot set the I/O priority: ioprio_set failed: Operation not permitted (the real-time class needs root, or CAP_SYS_ADMIN)\n');
    expect(code).toBe(1);
  });

  it('without ionice on PATH: status 1 and why, nothing read', async () => {
    const { code, stdout, stderr } = await run(['--io_priority', 'idle'], { input: '{"n":1}\n', cwd: dir, env: { PATH: join(dir, 'no-such-folder') } });
    expect(stdout).toBe('');
    expect(stderr).toBe('message-passing: --io_priority idle: cannot set the I/O priority: ionice is not installed (it comes with util-linux)\n');
    expect(code).toBe(1);
  });

  it('a class that does not exist is a usage error listing them', async () => {
    const { code, stderr } = await runHere(['--io_priority', 'fast']);
    expect(stderr).toBe("message-passing: --io_priority takes none, be, rt, idle, got 'fast'\n");
    expect(code).toBe(2);
  });
});
