// Multiline in a real chain with a hand-driven clock: which lines join, when a
// record is emitted (next record, idle, max_age, bounds, end), that keys never
// mix, what --stats counts, and that acknowledgements wait for held lines.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import multiline from '../../src/filters/multiline.js';
import { harness, prepare, type Harness } from './filter-harness.js';

/** Records of text lines through Multiline with `options` (Null codecs), after the end of input. */
async function records(options: object, lines: readonly string[]): Promise<string[]> {
  const h = await harness(multiline, options, 'null');
  h.send(lines);
  await h.end();
  balanced(h);
  return h.out as string[];
}

/** What --stats shows always adds up: every message read or made is out, dropped, or an error. */
function balanced(h: Harness): void {
  const { in: read, created, out, dropped, errors } = h.counters;
  expect(read + created).toBe(out + dropped + errors);
}

const PYTHON_LOG = [
  '2026-11-29 18:11:09,001 - INFO - shop - started',
  '2026-11-29 18:11:09,002 - ERROR - shop - charge failed',
  'Traceback (most recent call last):',
  '  File "/srv/shop/pay.py", line 12, in charge',
  '    gateway.send(card)',
  '    ~~~~~~~~~~~~^^^^^^',
  '  File "/srv/shop/gateway.py", line 40, in send',
  '    raise ValueError(f"card {card!r} refusée")',
  "ValueError: card 'x' refusée",
  'During handling of the above exception, another exception occurred:',
  'Traceback (most recent call last):',
  '  File "/srv/shop/pay.py", line 14, in charge',
  '    log_failure()',
  "KeyError: 'attempts'",
  '2026-11-29 18:11:09,003 - ERROR - shop - wrapped',
  'Traceback (most recent call last):',
  '  File "/srv/shop/pay.py", line 20, in run',
  'shop.errors.PaymentError',
  'The above exception was the direct cause of the following exception:',
  'Traceback (most recent call last):',
  '  File "/srv/shop/main.py", line 3, in <module>',
  'RuntimeError: giving up',
  'Traceback (most recent call last):',
  '  File "/srv/shop/main.py", line 9, in <module>',
  'SystemExit: 2',
  'WARNING:root:shutting down',
];

describe('presets', () => {
  it('python: a log line with its traceback, chained tracebacks and an uncaught one', async () => {
    expect(await records({ preset: 'python' }, PYTHON_LOG)).toEqual([
      PYTHON_LOG[0],
      PYTHON_LOG.slice(1, 14).join('\n'),
      PYTHON_LOG.slice(14, 22).join('\n'),
      PYTHON_LOG.slice(22, 25).join('\n'),
      PYTHON_LOG[25],
    ]);
  });

  it('python: exception groups, and stack_info', async () => {
    const lines = [
      'ERROR:root:group failed',
      '  + Exception Group Traceback (most recent call last):',
      '  |   File "<stdin>", line 1, in <module>',
      '  | ExceptionGroup: eg (2 sub-exceptions)',
      '  +-+---------------- 1 ----------------',
      '    | ValueError: 1',
      '    +------------------------------------',
      'INFO:root:where am I',
      'Stack (most recent call last):',
      '  File "/srv/a.py", line 3, in <module>',
      '    log.info("where am I", stack_info=True)',
      'INFO:root:next',
    ];
    expect(await records({ preset: 'python' }, lines)).toEqual([lines.slice(0, 7).join('\n'), lines.slice(7, 11).join('\n'), lines[11]]);
  });

  it('java: a log line with its exception, Caused by and ... N more; an uncaught one', async () => {
    const lines = [
      '2026-11-29 18:11:09 INFO shop - started',
      '2026-11-29 18:11:09 SEVERE shop - request failed',
      'java.lang.IllegalStateException: cannot handle order',
      '\tat Shop.handle(Shop.java:5)',
      '\tat Shop.main(Shop.java:10)',
      '\tSuppressed: java.io.IOException: close failed',
      '\t\tat Shop.close(Shop.java:30)',
      'Caused by: java.lang.IllegalArgumentException: no order A-17',
      '\tat Shop.load(Shop.java:3)',
      '\t... 9 more',
      'Exception in thread "main" java.lang.IllegalStateException: cannot handle order',
      '\tat Shop.handle(Shop.java:5)',
      'Caused by: java.lang.IllegalArgumentException: no order B-2',
      '\tat Shop.load(Shop.java:3)',
      'java.lang.OutOfMemoryError: Java heap space',
      '2026-11-29 18:11:10 INFO shop - done',
    ];
    expect(await records({ preset: 'java' }, lines)).toEqual([
      lines[0],
      lines.slice(1, 10).join('\n'),
      lines.slice(10, 14).join('\n'),
      lines[14],
      lines[15],
    ]);
  });

  it('go: a panic with its goroutine stacks', async () => {
    const lines = [
      '2026/11/29 18:00:00 starting worker',
      'panic: runtime error: index out of range [5] with length 3',
      'goroutine 1 [running]:',
      'main.process({0xc000012345, 0x3, 0x3})',
      '\t/src/app/main.go:12 +0x1d',
      'main.(*Worker).Run(0xc00001c030)',
      '\t/src/app/worker.go:20 +0x45',
      'created by main.main in goroutine 1',
      '\t/src/app/main.go:30 +0x66',
      'goroutine 7 [chan receive]:',
      'main.listen(...)',
      '\t/src/app/main.go:40',
      'exit status 2',
      '2026/11/29 18:00:01 restarted',
    ];
    expect(await records({ preset: 'go' }, lines)).toEqual([lines[0], lines.slice(1, 13).join('\n'), lines[13]]);
  });

  it('ruby: Logger backtraces, and an uncaught exception with its cause', async () => {
    const lines = [
      'I, [2026-11-29T18:00:00.000000 #42]  INFO -- : booting',
      'E, [2026-11-29T18:00:01.000000 #42] ERROR -- : undefined method `price\' for nil (NoMethodError)',
      "/app/lib/cart.rb:12:in `total'",
      "/app/lib/cart.rb:5:in `checkout'",
      "/app/lib/cart.rb:4:in `rescue in checkout': outer (RuntimeError)",
      "\tfrom /app/lib/cart.rb:1:in `checkout'",
      "\tfrom bin/run.rb:7:in `<main>'",
      "/app/lib/cart.rb:2:in 'Cart#checkout': inner (ArgumentError)",
      "\tfrom bin/run.rb:7:in '<main>'",
      'I, [2026-11-29T18:00:02.000000 #42]  INFO -- : bye',
    ];
    expect(await records({ preset: 'ruby' }, lines)).toEqual([lines[0], lines.slice(1, 4).join('\n'), lines.slice(4, 9).join('\n'), lines[9]]);
  });
});

describe('start, continue and negate', () => {
  const lines = ['2026-01-01 a', '  more a', 'still a', '2026-01-02 b', '2026-01-03 c', '  more c'];

  it('start: a matching line begins a record, any other continues it', async () => {
    expect(await records({ start: '^\\d{4}-' }, lines)).toEqual(['2026-01-01 a\n  more a\nstill a', '2026-01-02 b', '2026-01-03 c\n  more c']);
  });

  it('start with negate: a line that does not match begins a record', async () => {
    expect(await records({ start: '^\\s', negate: true }, lines)).toEqual(['2026-01-01 a\n  more a', 'still a', '2026-01-02 b', '2026-01-03 c\n  more c']);
  });

  it('continue: a matching line continues, any other begins', async () => {
    expect(await records({ continue: '^\\s' }, lines)).toEqual(['2026-01-01 a\n  more a', 'still a', '2026-01-02 b', '2026-01-03 c\n  more c']);
  });

  it('continue with negate: a line that does not match continues', async () => {
    expect(await records({ continue: '^\\d{4}-', negate: true }, lines)).toEqual(['2026-01-01 a\n  more a\nstill a', '2026-01-02 b', '2026-01-03 c\n  more c']);
  });

  it('a first line that would continue begins a record when none is open', async () => {
    expect(await records({ continue: '^\\s' }, ['  orphan', '  next', 'x'])).toEqual(['  orphan\n  next', 'x']);
  });

  it('joins with separator', async () => {
    expect(await records({ continue: '^\\s', separator: ' | ' }, ['a', ' b', ' c'])).toEqual(['a |  b |  c']);
  });

  it('options are usage errors that say what is wrong', () => {
    const usage = (options: object) => {
      try {
        prepare(multiline, options);
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(usage({})).toBe('--filter Test: give one of start, continue or preset');
    expect(usage({ start: 'a', preset: 'java' })).toBe('--filter Test: give one of start, continue or preset (not start and preset)');
    expect(usage({ preset: 'python', negate: true })).toBe('--filter Test: negate goes with start or continue, not with a preset');
    expect(usage({ start: '(' })).toBe('--filter Test: option \'start\' "(" is not a valid regular expression: Unterminated group');
    expect(usage({ preset: 'perl' })).toMatch(/'preset' must be one of python, java, go, ruby/);
    expect(usage({ preset: 'go', idle: '2' })).toMatch(/'idle' must be a duration/);
    expect(usage({ preset: 'go', max_lines: 0 })).toMatch(/'max_lines' must be at least 1/);
  });
});

describe('records of messages', () => {
  it('are the first message with field joined from every line, and lines: N', async () => {
    const h = await harness(multiline, { preset: 'python' });
    h.send([
      { level: 'ERROR', message: 'boom', n: 1 },
      { message: 'Traceback (most recent call last):', n: 2 },
      { message: '  File "a.py", line 1, in <module>', n: 3 },
      { message: 'ValueError: x', n: 4 },
      { level: 'INFO', message: 'ok', n: 5 },
    ]);
    await h.end();
    expect(h.out).toEqual([
      { level: 'ERROR', message: 'boom\nTraceback (most recent call last):\n  File "a.py", line 1, in <module>\nValueError: x', n: 1, lines: 4 },
      { level: 'INFO', message: 'ok', n: 5, lines: 1 },
    ]);
    balanced(h);
  });

  it('read and write a nested field', async () => {
    const h = await harness(multiline, { continue: '^\\s', field: 'log.text' });
    h.send([{ log: { text: 'a', stream: 'stderr' } }, { log: { text: ' b' } }]);
    await h.end();
    expect(h.out).toEqual([{ log: { text: 'a\n b', stream: 'stderr' }, lines: 2 }]);
  });

  it("join container log lines (Docker's log field, each with its LF) with separator ''", async () => {
    const h = await harness(multiline, { preset: 'java', field: 'log', separator: '' });
    h.send([
      { log: 'request failed\n', stream: 'stderr' },
      { log: 'java.lang.IllegalStateException: x\n', stream: 'stderr' },
      { log: '\tat A.b(A.java:1)\n', stream: 'stderr' },
      { log: 'next\n', stream: 'stdout' },
    ]);
    await h.end();
    expect(h.out).toEqual([
      { log: 'request failed\njava.lang.IllegalStateException: x\n\tat A.b(A.java:1)\n', stream: 'stderr', lines: 3 },
      { log: 'next\n', stream: 'stdout', lines: 1 },
    ]);
  });

  it('a message whose field is not a string ends the open record of its key and goes on after it', async () => {
    const h = await harness(multiline, { continue: '^\\s' });
    h.send([{ message: 'a' }, { message: ' b' }, { other: true }, { message: ' c' }]);
    await h.end();
    expect(h.out).toEqual([{ message: 'a\n b', lines: 2 }, { other: true }, { message: ' c', lines: 1 }]);
    balanced(h);
  });
});

describe('keys', () => {
  it('records of different keys never mix, however their lines interleave', async () => {
    const h = await harness(multiline, { preset: 'java', key: 'origin.file' });
    const a = (message: string) => ({ message, origin: { file: '/logs/a.log' } });
    const b = (message: string) => ({ message, origin: { file: '/logs/b.log' } });
    h.send([a('A1'), b('B1'), a('java.lang.Error: a'), b('java.lang.Error: b'), b('\tat B'), a('\tat A'), a('A2'), b('B2')]);
    await h.end();
    expect(h.out).toEqual([
      { ...a('A1\njava.lang.Error: a\n\tat A'), lines: 3 },
      { ...b('B1\njava.lang.Error: b\n\tat B'), lines: 3 },
      { ...a('A2'), lines: 1 },
      { ...b('B2'), lines: 1 },
    ]);
  });

  it('a list of fields makes one key of their values', async () => {
    const h = await harness(multiline, { continue: '^\\s', key: ['host', 'thread'] });
    h.send([
      { host: 'h', thread: 1, message: 'one' },
      { host: 'h', thread: 2, message: 'two' },
      { host: 'h', thread: 1, message: ' one more' },
      { host: 'g', thread: 1, message: ' other host' },
    ]);
    await h.end();
    expect(h.out.map((m) => (m as { message: string }).message)).toEqual(['one\n one more', 'two', ' other host']);
  });

  it('past max_keys the oldest key\'s record is emitted at once', async () => {
    const h = await harness(multiline, { continue: '^\\s', key: 'k', max_keys: 2 });
    h.send([{ k: 'a', message: 'a1' }, { k: 'b', message: 'b1' }, { k: 'a', message: ' a2' }]);
    expect(h.out).toEqual([]);
    h.send([{ k: 'c', message: 'c1' }]);
    expect(h.out).toEqual([{ k: 'a', message: 'a1\n a2', lines: 2 }]);
    h.send([{ k: 'b', message: ' b2' }, { k: 'd', message: 'd1' }]);
    expect(h.out).toHaveLength(2);
    expect(h.out[1]).toEqual({ k: 'b', message: 'b1\n b2', lines: 2 });
    await h.end();
    expect(h.out.slice(2)).toEqual([
      { k: 'c', message: 'c1', lines: 1 },
      { k: 'd', message: 'd1', lines: 1 },
    ]);
    balanced(h);
  });
});

describe('time and bounds', () => {
  it('finds the oldest record to emit at max_keys after thousands came and went, beside one long-lived record', async () => {
    const h = await harness(multiline, { continue: '^\\s', key: 'k', max_keys: 50, idle: '1h', max_age: '1h' });
    const sent: object[] = [{ k: 'long', message: 'start' }];
    for (let i = 0; i < 5000; i++) {
      sent.push({ k: `k${i}`, message: `m${i}` });
      if (i % 10 === 0) sent.push({ k: 'long', message: ` more ${i}` });
    }
    for (let i = 0; i < sent.length; i += 100) h.send(sent.slice(i, i + 100));
    expect(h.out.length).toBeGreaterThan(5000 - 50);
    await h.end();
    const out = h.out as Array<{ k: string; message: string; lines: number }>;
    const short = out.filter((r) => r.k !== 'long');
    expect(short.map((r) => r.message)).toEqual(Array.from({ length: 5000 }, (_, i) => `m${i}`));
    const long = out.filter((r) => r.k === 'long');
    // Evicted whenever it became the oldest, it comes out in several records; together they hold every line once, in order.
    expect(long.length).toBeGreaterThan(1);
    expect(long.map((r) => r.message).join('\n')).toBe(['start', ...Array.from({ length: 500 }, (_, i) => ` more ${i * 10}`)].join('\n'));
    balanced(h);
  });

  it('keeps finding the oldest record while thousands of records of another key start and end behind it', async () => {
    const h = await harness(multiline, { continue: '^\\s', key: 'k', max_keys: 2, max_lines: 5000, idle: '1h', max_age: '1h' });
    h.send([{ k: 'a', message: 'a' }]);
    for (let i = 0; i < 3000; i++) h.send([{ k: 'b', message: `b${i}` }, { k: 'a', message: ` a${i}` }]);
    h.send([{ k: 'c', message: 'c' }]);
    // c needs room: the oldest record is a's, held from the start.
    expect(h.out.at(-1)).toEqual({ k: 'a', message: ['a', ...Array.from({ length: 3000 }, (_, i) => ` a${i}`)].join('\n'), lines: 3001 });
    await h.end();
    expect((h.out as Array<{ k: string; message: string }>).filter((r) => r.k === 'b').map((r) => r.message)).toEqual(Array.from({ length: 3000 }, (_, i) => `b${i}`));
    balanced(h);
  });

  it('emits a record once idle passes without a line for its key, not before', async () => {
    const h = await harness(multiline, { continue: '^\\s', idle: '2s', key: 'k' });
    h.send([{ k: 'a', message: 'a' }, { k: 'b', message: 'b' }]);
    h.clock.advance(1500);
    h.send([{ k: 'a', message: ' a2' }]);
    h.clock.advance(499);
    expect(h.out).toEqual([]);
    h.clock.advance(1);
    expect(h.out).toEqual([{ k: 'b', message: 'b', lines: 1 }]);
    h.clock.advance(1499);
    expect(h.out).toHaveLength(1);
    h.clock.advance(1);
    expect(h.out).toEqual([
      { k: 'b', message: 'b', lines: 1 },
      { k: 'a', message: 'a\n a2', lines: 2 },
    ]);
    expect(h.counters).toMatchObject({ in: 3, created: 2, out: 2, dropped: 3 });
    await h.end();
    expect(h.out).toHaveLength(2);
    balanced(h);
  });

  it('emits a record max_age after its first line, however steady its lines come; the rest begins a new one', async () => {
    const h = await harness(multiline, { continue: '^\\s', idle: '2s', max_age: '10s' });
    h.send(['start']);
    for (let i = 1; i <= 15; i++) {
      h.clock.advance(1000);
      h.send([` line ${i}`]);
    }
    expect(h.out).toHaveLength(1);
    expect(h.out[0]).toBe(['start', ...Array.from({ length: 9 }, (_, i) => ` line ${i + 1}`)].join('\n'));
    h.clock.advance(2000);
    expect(h.out[1]).toBe(Array.from({ length: 6 }, (_, i) => ` line ${i + 10}`).join('\n'));
    balanced(h);
  });

  it('cuts a record at max_lines, marks it truncated, and lets the rest go on as the next record', async () => {
    const h = await harness(multiline, { preset: 'java', max_lines: 3 });
    h.send([{ message: 'failed' }, ...Array.from({ length: 6 }, (_, i) => ({ message: `\tat f${i}` })), { message: 'next' }]);
    await h.end();
    expect(h.out).toEqual([
      { message: 'failed\n\tat f0\n\tat f1', lines: 3, truncated: true },
      { message: '\tat f2\n\tat f3\n\tat f4', lines: 3, truncated: true },
      { message: '\tat f5', lines: 1 },
      { message: 'next', lines: 1 },
    ]);
    balanced(h);
  });

  it('cuts at max_bytes counted in UTF-8 with separators; a single longer line is kept whole', async () => {
    const h = await harness(multiline, { continue: '^\\s', max_bytes: 10 });
    h.send([{ message: 'éé' }, { message: ' ab' }, { message: ' c' }, { message: ' this line alone is long' }, { message: ' d' }]);
    await h.end();
    expect(h.out).toEqual([
      { message: 'éé\n ab', lines: 2, truncated: true },
      { message: ' c', lines: 1, truncated: true },
      { message: ' this line alone is long', lines: 1, truncated: true },
      { message: ' d', lines: 1 },
    ]);
  });

  it('emits everything held at the end of input, oldest key first', async () => {
    const h = await harness(multiline, { continue: '^\\s', key: 'k', idle: '1h' });
    h.send([{ k: 'x', message: 'x' }, { k: 'y', message: 'y' }, { k: 'x', message: ' x2' }]);
    expect(h.out).toEqual([]);
    await h.end();
    expect(h.out).toEqual([
      { k: 'x', message: 'x\n x2', lines: 2 },
      { k: 'y', message: 'y', lines: 1 },
    ]);
    expect(h.counters).toMatchObject({ in: 3, created: 2, out: 2, dropped: 3, errors: 0 });
  });
});

describe('acknowledgements', () => {
  it('wait until every line a batch gave is out of the filter', async () => {
    const h = await harness(multiline, { continue: '^\\s', idle: '2s' });
    const first = h.send(['a', ' a2']);
    expect(first()).toBe(false);
    const second = h.send([' a3', 'b']);
    // 'a' is out (in place of 'b'), but 'b' is held: the second batch waits, the first is done.
    expect(h.out).toEqual(['a\n a2\n a3']);
    expect(first()).toBe(true);
    expect(second()).toBe(false);
    h.clock.advance(2000);
    expect(h.out).toEqual(['a\n a2\n a3', 'b']);
    expect(second()).toBe(true);
  });

  it('a batch whose lines join a record held across batches waits for that record', async () => {
    const h = await harness(multiline, { continue: '^\\s' });
    const batches = [h.send(['a']), h.send([' b']), h.send([' c'])];
    expect(batches.map((done) => done())).toEqual([false, false, false]);
    await h.end();
    expect(batches.map((done) => done())).toEqual([true, true, true]);
  });
});
