// Parse, Multiline, Key, All and Delay through the real binary, on logs made by
// real programs: Python's logging into a file, util-linux logger, Python's
// http.server, a JVM's stack traces; two files followed at once through a glob.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lines, records, run, sleep, start, stop, tempDir } from './helpers.js';

const dir = tempDir();
let cases = 0;
/** A fresh folder for one test. */
const folder = () => {
  const path = join(dir, `case-${++cases}`);
  mkdirSync(path, { recursive: true });
  return path;
};
const opts = (o: object) => JSON.stringify(o);
const has = (command: string) => spawnSync('/bin/sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

/** The counts of a --stats line, which must add up: in + created = out + dropped + errors. */
function stats(stderr: string) {
  const match = /stats in=(\d+) created=(\d+) out=(\d+) dropped=(\d+) errors=(\d+)/.exec(stderr);
  expect(match, stderr).not.toBeNull();
  const [, read, created, out, dropped, errors] = match!.map(Number) as [number, number, number, number, number, number];
  expect(read + created).toBe(out + dropped + errors);
  return { in: read, created, out, dropped, errors };
}

// Logs through the standard library into a file, as an application does, and
// writes beside it what each record must become: the line's fields, and its
// message with the traceback (empty lines left out, as the File input skips them).
const PYTHON_APP = String.raw`
import json, logging, sys

log_path, expected_path = sys.argv[1], sys.argv[2]
expected = []

class Expect(logging.Handler):
    def emit(self, record):
        text = self.format(record)
        header = self.formatter.formatMessage(record)
        message = record.getMessage() + text[len(header):]
        entry = {'level': record.levelname, 'logger': record.name,
                 'message': '\n'.join(line for line in message.split('\n') if line != ''),
                 'lines': len([line for line in text.split('\n') if line != ''])}
        if '%(asctime)s' in self.formatter._fmt:
            entry = {'timestamp': record.asctime, **entry}
        expected.append(entry)

logging.basicConfig(filename=log_path, encoding='utf-8', level=logging.DEBUG)
root = logging.getLogger()
root.addHandler(Expect())
root.handlers[-1].setFormatter(logging.Formatter(logging.BASIC_FORMAT))

shop = logging.getLogger('shop.pay')
shop.propagate = False
for handler in (logging.FileHandler(log_path, encoding='utf-8'), Expect()):
    handler.setFormatter(logging.Formatter('%(asctime)s - %(levelname)s - %(name)s - %(message)s'))
    shop.addHandler(handler)

class PaymentError(Exception):
    pass

def charge(card):
    raise ValueError(f'carte refusée : «{card}» — 支払い失敗')

shop.info('démarrage ✓ %s', 'ok')
try:
    charge('4111')
except ValueError:
    shop.exception('charge failed for order %s', 'A-17')
try:
    try:
        {}['attempts']
    except KeyError:
        raise RuntimeError('retry budget exhausted')
except RuntimeError:
    shop.exception('retry failed')
try:
    try:
        charge('5500')
    except ValueError as error:
        raise PaymentError('gateway said no') from error
except PaymentError:
    shop.exception('wrapped')
logging.warning('low stock: %d left', 3)
try:
    1 / 0
except ZeroDivisionError:
    logging.exception('worker crashed')
shop.error('no traceback here')
shop.info('done')

with open(expected_path, 'w', encoding='utf-8') as out:
    json.dump(expected, out, ensure_ascii=False)
`;

// One suite of concurrent tests: most of their time is processes starting.
describe.concurrent('Parse, Multiline, Key, All and Delay', () => {
  describe('Parse and Multiline on real logs', () => {
    it("Python's logging with tracebacks, chained exceptions and non-ASCII text: every record once, intact, fields right", async () => {
      const here = folder();
      const [script, log, expectedPath] = [join(here, 'app.py'), join(here, 'app.log'), join(here, 'expected.json')];
      writeFileSync(script, PYTHON_APP);
      execFileSync('python3', [script, log, expectedPath]);
      const expected = JSON.parse(readFileSync(expectedPath, 'utf8')) as Array<Record<string, unknown>>;
      expect(expected).toHaveLength(8);
      expect(readFileSync(log, 'utf8')).toContain('The above exception was the direct cause of the following exception:');

      const { code, stdout, stderr } = await run([
        '--input', 'File', '--input_options', opts({ filename: log }),
        '--decoder', 'Null',
        '--filter', 'Parse', '--filter_options', opts({ pattern: '%{PYTHON_LOGGING}', on_mismatch: 'pass' }),
        '--filter', 'Multiline', '--filter_options', opts({ preset: 'python' }),
        '--stats',
      ]);
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual(expected);
      const counts = stats(stderr);
      expect(counts).toMatchObject({ out: 8, errors: 0 });
      expect(counts.in).toBe(readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').length);
    });

    it('a Java stack trace with Caused by and ... N more, under a one-line log format', async () => {
      // What OpenJDK 17 printed, as it is, for a program (run with `java Shop.java`) logging an exception
      // through java.util.logging with -Djava.util.logging.SimpleFormatter.format='%1$tF %1$tT %4$s %3$s - %5$s%6$s%n',
      // then dying of an uncaught one.
      const trace = [
        '2026-11-29 18:18:35 INFO shop - started',
        '2026-11-29 18:18:35 SEVERE shop - request failed',
        'java.lang.IllegalStateException: cannot handle order',
        '\tat Shop.handle(Shop.java:5)',
        '\tat Shop.main(Shop.java:10)',
        '\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)',
        '\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke(NativeMethodAccessorImpl.java:77)',
        '\tat java.base/jdk.internal.reflect.DelegatingMethodAccessorImpl.invoke(DelegatingMethodAccessorImpl.java:43)',
        '\tat java.base/java.lang.reflect.Method.invoke(Method.java:569)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.execute(Main.java:419)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.run(Main.java:192)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.main(Main.java:132)',
        'Caused by: java.lang.IllegalArgumentException: no order A-17',
        '\tat Shop.load(Shop.java:3)',
        '\t... 9 more',
        '',
        '2026-11-29 18:18:35 WARNING shop - retrying',
        'Exception in thread "main" java.lang.IllegalStateException: cannot handle order',
        '\tat Shop.handle(Shop.java:5)',
        '\tat Shop.main(Shop.java:12)',
        'Caused by: java.lang.IllegalArgumentException: no order B-2',
        '\tat Shop.load(Shop.java:3)',
        '\tat Shop.handle(Shop.java:5)',
        '\tat Shop.main(Shop.java:12)',
        '\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)',
        '\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke(NativeMethodAccessorImpl.java:77)',
        '\tat java.base/jdk.internal.reflect.DelegatingMethodAccessorImpl.invoke(DelegatingMethodAccessorImpl.java:43)',
        '\tat java.base/java.lang.reflect.Method.invoke(Method.java:569)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.execute(Main.java:419)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.run(Main.java:192)',
        '\tat jdk.compiler/com.sun.tools.javac.launcher.Main.main(Main.java:132)',
      ];
      const { code, stdout, stderr } = await run(
        [
          '--decoder', 'Null',
          '--filter', 'Regex', '--filter_options', opts({ pattern: '^%{TIMESTAMP_ISO8601:time} %{LOGLEVEL:level} %{NOTSPACE:logger} - %{GREEDYDATA:message}$', on_mismatch: 'pass' }),
          '--filter', 'Multiline', '--filter_options', opts({ preset: 'java' }),
        ],
        { input: trace.join('\n') + '\n' },
      );
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual([
        { time: '2026-11-29 18:18:35', level: 'INFO', logger: 'shop', message: 'started', lines: 1 },
        { time: '2026-11-29 18:18:35', level: 'SEVERE', logger: 'shop', message: ['request failed', ...trace.slice(2, 15)].join('\n'), lines: 14 },
        { time: '2026-11-29 18:18:35', level: 'WARNING', logger: 'shop', message: 'retrying', lines: 1 },
        { message: trace.slice(17).join('\n'), lines: trace.length - 17 },
      ]);
    });

    it('two files written at the same time, read through a glob with origin and keyed by origin.file: no record mixes them', async () => {
      const here = folder();
      // Docker's json-file log format: one JSON object per line of output, the line's LF kept in "log".
      const container = (name: string, i: number) => [
        `${name} request ${i} failed`,
        'Traceback (most recent call last):',
        `  File "/srv/${name}.py", line ${i}, in handle`,
        `    step_${i}()`,
        `ValueError: ${name} broke at ${i}`,
      ];
      const docker = (line: string) => JSON.stringify({ log: `${line}\n`, stream: 'stderr', time: '2026-11-29T18:00:00.000000000Z' }) + '\n';
      const files = { a: join(here, 'a-json.log'), b: join(here, 'b-json.log') };
      writeFileSync(files.a, '');
      writeFileSync(files.b, '');
      const tool = start([
        '--input', 'File', '--input_options', opts({ filename: join(here, '*.log'), follow: true, origin: 'origin', poll_interval: '50ms' }),
        '--filter', 'Multiline', '--filter_options', opts({ preset: 'python', field: 'log', separator: '', key: 'origin.file', idle: '1500ms' }),
      ], { timeout: 50_000 });
      await sleep(200);
      const rounds = 4;
      for (let i = 1; i <= rounds; i++) {
        const a = container('alpha', i);
        const b = container('beta', i);
        // Line by line, alternating, with pauses far shorter than idle: the follower sees records half-written.
        for (let l = 0; l < a.length; l++) {
          appendFileSync(files.a, docker(a[l]!));
          appendFileSync(files.b, docker(b[l]!));
          if (l % 2 === 1) await sleep(15);
        }
      }
      // The last record of each file comes out after idle, while the program still runs.
      await tool.waitFor('stdout', /beta broke at 4[^\n]*\n[^]*alpha broke at 4|alpha broke at 4[^\n]*\n[^]*beta broke at 4/, 20_000);
      const { code, stdout } = await stop(tool);
      expect(code).toBe(0);
      const got = lines(stdout) as Array<{ log: string; origin: { file: string; line: number }; lines: number }>;
      expect(got).toHaveLength(2 * rounds);
      for (const [name, file] of [['alpha', files.a], ['beta', files.b]] as const) {
        const mine = got.filter((r) => r.origin.file.endsWith(file.slice(file.lastIndexOf('/'))));
        expect(mine.map((r) => r.log)).toEqual(Array.from({ length: rounds }, (_, i) => container(name, i + 1).join('\n') + '\n'));
        expect(mine.map((r) => r.origin.line)).toEqual([1, 6, 11, 16]);
        expect(mine.every((r) => r.lines === 5)).toBe(true);
      }
    });

    it('follow mode: the last record comes out after idle while the writer pauses, not only at exit', async () => {
      const here = folder();
      const log = join(here, 'app.log');
      writeFileSync(log, '');
      const tool = start([
        '--input', 'File', '--input_options', opts({ filename: log, follow: true, poll_interval: '50ms' }),
        '--decoder', 'Null',
        '--filter', 'Multiline', '--filter_options', opts({ preset: 'python', idle: '1500ms' }),
      ], { timeout: 50_000 });
      await sleep(150);
      appendFileSync(log, 'ERROR:root:first\nTraceback (most recent call last):\n  File "a.py", line 1, in <module>\n');
      await sleep(50);
      appendFileSync(log, 'OSError: disk full\n');
      await tool.waitFor('stdout', '\n', 20_000);
      expect(lines(tool.stdout)).toEqual(['ERROR:root:first\nTraceback (most recent call last):\n  File "a.py", line 1, in <module>\nOSError: disk full']);
      appendFileSync(log, 'INFO:root:second\n');
      // Stopped only once the line was read (it comes out after idle): a stop right after the append races the follower.
      await tool.waitFor('stdout', 'INFO:root:second', 20_000);
      const { code, stdout } = await stop(tool);
      expect(code).toBe(0);
      expect(lines(stdout)).toHaveLength(2);
      expect(lines(stdout)[1]).toBe('INFO:root:second');
    });

    it.skipIf(!has('logger'))("syslog lines from the host's logger, in RFC 3164 and RFC 5424 form", async () => {
      const sent = (args: string[]) =>
        spawnSync('logger', ['--socket-errors=off', '--stderr', '--tag', 'shop', ...args], { encoding: 'utf8' }).stderr.trim();
      const bsd = sent(['--rfc3164', '--id', 'payment é received']);
      const modern = sent(['--rfc5424', '--msgid', 'PAY', '--sd-id', 'order@32473', '--sd-param', 'id="A-17"', 'payment refused']);
      expect(bsd).toMatch(/^<13>/);
      const { code, stdout, stderr } = await run(
        ['--decoder', 'Null', '--filter', 'Parse', '--filter_options', opts({ patterns: ['%{SYSLOG_RFC5424}', '%{SYSLOG_RFC3164}'] })],
        { input: `${bsd}\n${modern}\n` },
      );
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const [first, second] = lines(stdout) as Array<Record<string, unknown>>;
      const host = hostname();
      expect(first).toEqual({ priority: 13, timestamp: expect.stringMatching(/^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$/), host, program: 'shop', pid: expect.any(Number), message: 'payment é received' });
      expect(second).toEqual({
        priority: 13,
        version: 1,
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        host,
        app: 'shop',
        msgid: 'PAY',
        structured_data: expect.stringContaining('[order@32473 id="A-17"]'),
        message: 'payment refused',
      });
    });

    it("access log lines from Python's http.server through COMMON_LOG; its other lines go to the error output", async () => {
      const here = folder();
      writeFileSync(join(here, 'index.html'), '<p>hi</p>');
      const server = String.raw`
import http.server, threading, urllib.request
server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
for path in ['/index.html', '/missing?q=%C3%A9']:
    try:
        urllib.request.urlopen(f'http://127.0.0.1:{server.server_port}{path}').read()
    except Exception:
        pass
server.shutdown()
`;
      const log = spawnSync('python3', ['-c', server], { cwd: here, encoding: 'utf8' }).stderr;
      expect(log.split('\n').filter(Boolean)).toHaveLength(3);
      const { code, stdout, stderr } = await run(['--decoder', 'Null', '--filter', 'Parse', '--filter_options', opts({ pattern: '%{COMMON_LOG}' }), '--stats'], { input: log });
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual([
        {
          message: expect.stringMatching(/^127\.0\.0\.1 - - \[.*\] "GET \/index\.html HTTP\/1\.1" 200 -$/),
          client: '127.0.0.1',
          timestamp: expect.stringMatching(/^\d\d\/[A-Z][a-z]{2}\/\d{4} \d\d:\d\d:\d\d$/),
          method: 'GET',
          path: '/index.html',
          http_version: '1.1',
          status: 200,
        },
        { message: expect.any(String), client: '127.0.0.1', timestamp: expect.any(String), method: 'GET', path: '/missing?q=%C3%A9', http_version: '1.1', status: 404 },
      ]);
      const errors = records(stderr.split('\n').filter((l) => l.startsWith('{')).join('\n'));
      expect(errors).toEqual([{ error: 'filter', reason: "no pattern matched field 'message'", source: 'stdin:2', stage: 'filter Parse', frame: expect.stringContaining('code 404, message File not found') }]);
      expect(stats(stderr)).toMatchObject({ in: 3, out: 2, errors: 1 });
    });
  });

  describe('Parse and Multiline on the command line', () => {
    it('a pattern that does not compile, or names an unknown %{NAME}, is a usage error that says which', async () => {
      const unknown = await run(['--filter', 'Parse', '--filter_options', opts({ pattern: '%{IPV4:ip} %{HOSTNAM:host}' })]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toBe(
        'message-passing: --filter Parse: pattern "%{IPV4:ip} %{HOSTNAM:host}": %{HOSTNAM} is not a known pattern (did you mean %{HOSTNAME}?); see message-passing --help Parse, or add it to definitions\n',
      );
      const broken = await run(['--filter', 'Parse', '--filter_options', opts({ patterns: ['ok', '(?<a>x'] })]);
      expect(broken.code).toBe(2);
      expect(broken.stderr).toBe('message-passing: --filter Parse: patterns[1] "(?<a>x": not a valid regular expression: Unterminated group\n');
      const multiline = await run(['--filter', 'Multiline', '--filter_options', opts({ start: '[' })]);
      expect(multiline.code).toBe(2);
      expect(multiline.stderr).toMatch(/^message-passing: --filter Multiline: option 'start' "\[" is not a valid regular expression/);
    });

    it('--help Parse lists the pattern library with the fields of whole-line patterns', async () => {
      const { code, stdout } = await run(['--help', 'Regex']);
      expect(code).toBe(0);
      const text = stdout.replace(/\s+/g, ' ');
      expect(text).toMatch(/^Parse \(filter\): /);
      for (const name of ['INT', 'NUMBER', 'WORD', 'NOTSPACE', 'DATA', 'GREEDYDATA', 'IP', 'HOSTNAME', 'TIMESTAMP_ISO8601', 'LOGLEVEL', 'SYSLOGTIMESTAMP', 'PYTHON_LOGGING', 'SYSLOG_RFC3164', 'SYSLOG_RFC5424', 'COMMON_LOG', 'COMBINED_LOG']) {
        expect(text).toContain(` ${name}: `);
      }
      expect(text).toContain('fields client, ident, user, timestamp, method, path, http_version, status (integer), bytes (integer)');
    });

    it('a line longer than max_length goes to the error output unmatched, and the rest goes on', async () => {
      const hostile = 'a'.repeat(5000) + '!';
      const { code, stdout, stderr } = await run(
        ['--decoder', 'Null', '--filter', 'Parse', '--filter_options', opts({ pattern: '^(a|aa)+$', max_length: '4KiB', on_mismatch: 'pass' })],
        { input: `${hostile}\naaaa\n` },
      );
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual([{ message: 'aaaa' }]);
      expect(records(stderr)).toEqual([
        { error: 'filter', reason: "field 'message' is longer than max_length (4KiB): not matched", source: 'stdin:1', stage: 'filter Parse', frame: 'a'.repeat(1024) },
      ]);
    });
  });

  describe("Perl's Key, All and Delay", () => {
    const events = [{ level: 'error', n: 1 }, { level: 'info', n: 2 }, { level: 'error', n: 3 }, { n: 4 }].map((e) => JSON.stringify(e)).join('\n') + '\n';

    it('Key passes the matching messages and counts the others as dropped', async () => {
      const { code, stdout, stderr } = await run(['--filter', 'Key', '--filter_options', opts({ key: 'level', match: 'error' }), '--stats'], { input: events });
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual([{ level: 'error', n: 1 }, { level: 'error', n: 3 }]);
      expect(stats(stderr)).toMatchObject({ in: 4, out: 2, dropped: 2 });
    });

    it('All drops everything', async () => {
      const { code, stdout, stderr } = await run(['--filter', 'All', '--stats'], { input: events });
      expect(code).toBe(0);
      expect(stdout).toBe('');
      expect(stats(stderr)).toMatchObject({ in: 4, out: 0, dropped: 4 });
    });

    it('Delay holds each message, keeps the order, and lets everything go at the end of input without waiting', async () => {
      const tool = start(['--filter', 'Delay', '--filter_options', opts({ delay_for: '300ms' })], { timeout: 50_000 });
      tool.child.stdin!.write('{"n":1}\n{"n":2}\n');
      await sleep(100);
      expect(tool.stdout).toBe('');
      await tool.waitFor('stdout', '{"n":1}\n{"n":2}\n', 20_000);
      tool.child.stdin!.end('{"n":3}\n');
      const { code, stdout } = await tool.done;
      expect(code).toBe(0);
      expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    });
  });
});
