// Ending: a closed output pipe, SIGTERM/SIGINT with a drain, a second signal, and --stats.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, lines, sleep, start, tempDir } from './helpers.js';

const dir = tempDir();
const big = join(dir, 'big.ndjson');
writeFileSync(big, Array.from({ length: 300_000 }, (_, i) => `{"n":${i + 1},"text":"some words to make the line longer"}\n`).join(''));
writeFileSync(
  join(dir, 'count.mjs'),
  `export default class CountSeen {
    seen = 0;
    filter(message) { this.seen++; return message; }
    flush() { return { seen: this.seen }; }
  }\n`,
);
// Blocks forever on {"block": true}; the interval keeps Node alive so only a signal can end it.
writeFileSync(
  join(dir, 'block.mjs'),
  `export default (message) => {
    if (!message.block) return message;
    process.stderr.write('blocking\\n');
    return new Promise(() => setInterval(() => {}, 1000));
  };\n`,
);
// Its flush takes 300 ms: a drain still under way when a second signal comes.
writeFileSync(
  join(dir, 'slow-flush.mjs'),
  `export default class SlowFlush {
    seen = 0;
    filter(message) { this.seen++; return message; }
    async flush() { await new Promise((resolve) => setTimeout(resolve, 300)); return { seen: this.seen }; }
  }\n`,
);
writeFileSync(join(dir, 'sort.mjs'), 'export default (m) => (m.drop ? undefined : m.bad ? Promise.reject(new Error("bad")) : m);\n');

/** Runs a shell pipeline; resolves with its stdout and stderr. */
function shell(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.concurrent('a closed output pipe (| head)', () => {
  const cases: Array<[string, string]> = [
    ['JSON from a file', `node ${BIN} < big.ndjson`],
    ['raw text from a file', `node ${BIN} --decoder Null --encoder Null < big.ndjson`],
    ['JSON through a filter from a pipe', `cat big.ndjson | node ${BIN} --filter Null`],
  ];
  it.each(cases)('%s: exit 0, quietly', async (_what, command) => {
    // PIPESTATUS holds each stage's status; ours is the one before head.
    const stages = command.split('|').length;
    const { stdout, stderr } = await shell(`${command} | head -n 3; echo "status=\${PIPESTATUS[${stages - 1}]}"`);
    const [first, second, third, status] = stdout.trimEnd().split('\n');
    expect(lines([first, second, third].join('\n'))).toMatchObject([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(status).toBe('status=0');
    expect(stderr).toBe('');
  });
});

describe.concurrent('SIGTERM and SIGINT', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s with stdin still open: every line written before is out, exit 0', async (signal) => {
    const tool = start([], { cwd: dir });
    const sent = Array.from({ length: 50 }, (_, i) => `{"n":${i + 1}}\n`).join('');
    tool.child.stdin!.write(sent);
    await tool.waitFor('stdout', '{"n":50}\n');
    tool.child.kill(signal);
    const { code, stdout, stderr } = await tool.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(sent);
  });

  it('two signals at once, as timeout(1) sends them (to the program and to its group), are one stop: it drains and exits 0', async () => {
    const tool = start(['--filter', './slow-flush.mjs'], { cwd: dir });
    tool.child.stdin!.write('{"n":1}\n{"n":2}\n');
    await tool.waitFor('stdout', '{"n":2}\n');
    // Apart enough to be handled one by one (sent together, the kernel would merge them), yet one stop.
    tool.child.kill('SIGTERM');
    await sleep(50);
    tool.child.kill('SIGTERM');
    const { code, stdout, stderr } = await tool.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { seen: 2 }]);
  });

  it("drains on SIGTERM: a class filter's flush output comes last", async () => {
    const tool = start(['--filter', './count.mjs'], { cwd: dir });
    tool.child.stdin!.write('{"n":1}\n{"n":2}\n');
    await sleep(50);
    tool.child.stdin!.write('{"n":3}\n');
    await tool.waitFor('stdout', '{"n":3}\n');
    tool.child.kill('SIGTERM');
    const { code, stdout } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { seen: 3 }]);
  });

  it('a second signal exits at once when the drain cannot finish, with status 143 and the count it left behind', async () => {
    const tool = start(['--filter', './block.mjs'], { cwd: dir });
    tool.child.stdin!.write('{"n":1}\n');
    await tool.waitFor('stdout', '{"n":1}\n');
    tool.child.stdin!.write('{"block":true}\n');
    await tool.waitFor('stderr', 'blocking\n');
    tool.child.kill('SIGTERM');
    // Past the half second within which a signal counts as the same stop.
    await sleep(1000);
    expect(tool.child.exitCode, 'the first signal waits for the drain').toBeNull();
    const secondAt = Date.now();
    tool.child.kill('SIGTERM');
    const { code, stdout, stderr } = await tool.done;
    expect(Date.now() - secondAt).toBeLessThan(1000);
    expect(code).toBe(143);
    expect(stdout).toBe('{"n":1}\n');
    expect(stderr).toBe('blocking\nmessage-passing: second SIGTERM: stopped at once; 1 message was left behind\n');
  });
});

describe.concurrent('--stats', () => {
  it('prints a line every SECONDS and one at the end with in, out, dropped and errors', async () => {
    const tool = start(['--stats', '1', '--filter', './sort.mjs'], { cwd: dir });
    // 10 good, 3 dropped by the filter, 2 not JSON, 1 failed in the filter, and empty lines that do not count.
    const good = Array.from({ length: 10 }, (_, i) => `{"n":${i}}\n`).join('');
    tool.child.stdin!.write(good + '\n{"drop":1}\n{"drop":2}\nnot json\n');
    await tool.waitFor('stderr', /stats in=\d+/, 5000);
    tool.child.stdin!.end('{"drop":3}\n\r\n{"bad":1}\n{oops\n');
    const { code, stdout, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(stdout).toBe(good);
    const stats = stderr.split('\n').filter((l) => l.startsWith('message-passing: stats '));
    expect(stats.length).toBeGreaterThanOrEqual(2);
    expect(stats[0]).toMatch(/^message-passing: stats in=13 created=0 out=10 dropped=2 errors=1 rate=\d+\/s elapsed=1\.\d+s$/);
    expect(stats.at(-1)).toMatch(/^message-passing: stats in=16 created=0 out=10 dropped=3 errors=3 rate=\d+\/s elapsed=\d+\.\d+s$/);
    const records = stderr.split('\n').filter((l) => l.startsWith('{'));
    expect(records.map((r) => (JSON.parse(r) as { error: string }).error).sort()).toEqual(['decode', 'decode', 'filter']);
  });

  it('--stats alone defaults to 10 seconds and still prints the last line at the end', async () => {
    const tool = start(['--stats'], { input: '{"a":1}\n{"a":2}\n' });
    const { code, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(stderr).toMatch(/^message-passing: stats in=2 created=0 out=2 dropped=0 errors=0 rate=\d+\/s elapsed=\d+\.\ds\n$/);
  });

  it('takes fractions of a second (--stats .5)', async () => {
    const tool = start(['--stats', '.5']);
    // Two periodic lines within 3 s: a whole-second interval could not give that.
    await tool.waitFor('stderr', /(message-passing: stats in=0 created=0 out=0 dropped=0 errors=0 rate=0\/s elapsed=\d+\.\ds\n){2}/, 3000);
    tool.child.stdin!.end();
    expect((await tool.done).code).toBe(0);
  });

  it('prints the last line on SIGTERM too', async () => {
    const tool = start(['--stats', '30'], { cwd: dir });
    tool.child.stdin!.write('{"a":1}\n');
    await tool.waitFor('stdout', '{"a":1}\n');
    tool.child.kill('SIGTERM');
    const { code, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(stderr).toMatch(/^message-passing: stats in=1 created=0 out=1 dropped=0 errors=0 /);
  });
});
