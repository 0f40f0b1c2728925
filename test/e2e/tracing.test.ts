// Where a failure happened, as a user finds it: error records name the input
// position of the message (source) and the stage that failed; a filter's
// failures outside its messages name the filter; --stats adds up whatever filters
// make or take.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lines, records, run, start, tempDir } from './helpers.js';

const dir = tempDir();
const modules: Record<string, string> = {
  // Fans out, drops, and copies a message with one bad copy.
  'split.mjs': `export default (m) => {
    if (m.drop) return undefined;
    if (m.copies) return Array.from({ length: m.copies }, (_, i) => ({ ...m, copies: undefined, copy: i, bad: m.badCopy === i }));
    return m;
  };`,
  'parse.mjs': `export default (m) => {
    if (m.bad) throw new Error('cannot parse ' + (m.n ?? m.summary));
    return m;
  };`,
  'unwritable.mjs': `export default (m) => {
    if (m.big) return { n: m.n, big: 10n };
    if (m.cycle) { const c = { n: m.n }; c.self = c; return c; }
    return m;
  };`,
  'hold.mjs': `export default class Hold {
    held = [];
    filter(m) { this.held.push(m); return undefined; }
    flush() { return [...this.held, { summary: this.held.length, bad: true }]; }
  };`,
  'bad-flush.mjs': `export default class BadFlush {
    filter(m) { return m; }
    flush() { throw new Error('disk gone'); }
  };`,
  'rejecting-flush.mjs': `export default class RejectingFlush {
    filter(m) { return m; }
    async flush() { throw new Error('late failure'); }
  };`,
  // Fails from timers and promises it starts as it loads and as it is made.
  'restless.mjs': `setTimeout(() => { throw new Error('at load'); }, 0);
  Promise.reject(new Error('rejected at load'));
  export default class Restless {
    constructor() {
      setTimeout(() => { throw new Error('from the constructor'); }, 0);
      Promise.reject(new Error('rejected in the constructor'));
    }
    filter(m) { return m; }
  };`,
  'junk-pusher.mjs': `export default class JunkPusher {
    constructor(options, context) { this.context = context; }
    filter(m) {
      setTimeout(() => {
        for (const junk of [undefined, null, () => 1, Symbol('s')]) this.context.push(junk);
        this.context.push({ pushed: m.n });
      }, 1);
      return m;
    }
  };`,
  // What its timer returns goes on, in stream order: two messages for the first one, none for the others.
  'scheduler.mjs': `export function create(options, context) {
    return {
      filter(m) {
        if (m.n === 1) context.schedule(1, () => [{ timer: 1 }, { timer: 2 }]);
        if (m.n === 2) context.schedule(1, () => undefined);
        return m.n === 3 ? [] : m;
      },
    };
  }`,
  // Every way a user filter can add or take messages, by what each message asks.
  'everything.mjs': `export default class Everything {
    constructor(options, context) { this.context = context; this.held = []; }
    filter(m) {
      switch (m.do) {
        case 'fan': return [m, { ...m, copy: 1 }, { ...m, copy: 2 }];
        case 'empty': return [];
        case 'drop': return undefined;
        case 'null': return null;
        case 'hold': this.held.push(m); return undefined;
        case 'push': this.context.push([{ kind: 'x', pushed: 1 }, { kind: 'x', pushed: 2 }]); return m;
        case 'async': return Promise.resolve([m, { ...m, copy: 1 }]);
        case 'throw': throw new Error('cannot take it');
        case 'big': return { ...m, big: 10n };
        default: return m;
      }
    }
    flush() { return [...this.held, { kind: 'x', summary: this.held.length }]; }
  };`,
};
for (const [name, text] of Object.entries(modules)) writeFileSync(join(dir, name), text + '\n');
const runHere = (args: string[], input: string) => run(args, { cwd: dir, input });
const ndjson = (...items: Array<object | string>) => items.map((m) => (typeof m === 'string' ? m : JSON.stringify(m)) + '\n').join('');

/** The counts of the last --stats line. */
function stats(stderr: string): Record<'in' | 'created' | 'out' | 'dropped' | 'errors', number> {
  const found = /stats in=(\d+) created=(\d+) out=(\d+) dropped=(\d+) errors=(\d+) /.exec(stderr.trimEnd().split('\n').at(-1) ?? '');
  expect(found, stderr).not.toBeNull();
  const [read, created, out, dropped, errors] = found!.slice(1).map(Number) as [number, number, number, number, number];
  return { in: read, created, out, dropped, errors };
}

describe.concurrent('error records say where the message came from, and which stage failed', () => {
  it('a filter: the input line, through filters before it that dropped and multiplied messages', async () => {
    const input = ndjson(
      { n: 1 },
      { n: 2, drop: true },
      { n: 3, copies: 2, badCopy: 1 },
      '',
      { n: 5 },
      'not json',
      { n: 7, bad: true },
      { n: 8, copies: 3 },
      { n: 9 },
      { n: 10 },
      { n: 11 },
      { n: 12, bad: true },
    );
    const { code, stdout, stderr } = await runHere(['--filter', './split.mjs', '--filter', './parse.mjs'], input);
    expect(code).toBe(0);
    expect((lines(stdout) as Array<{ n: number }>).map((m) => m.n)).toEqual([1, 3, 5, 8, 8, 8, 9, 10, 11]);
    expect(records(stderr)).toEqual([
      expect.objectContaining({ error: 'decode', source: 'stdin:6', frame: 'not json' }),
      { error: 'filter', reason: 'cannot parse 3', source: 'stdin:3', stage: 'filter ./parse.mjs', frame: '{"n":3,"badCopy":1,"copy":1,"bad":true}' },
      { error: 'filter', reason: 'cannot parse 7', source: 'stdin:7', stage: 'filter ./parse.mjs', frame: '{"n":7,"bad":true}' },
      { error: 'filter', reason: 'cannot parse 12', source: 'stdin:12', stage: 'filter ./parse.mjs', frame: '{"n":12,"bad":true}' },
    ]);
  });

  it('the encoder: a value it cannot write (a BigInt, a cycle) is a record with a readable copy', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './unwritable.mjs'], ndjson({ n: 1 }, { n: 2, big: true }, { n: 3, cycle: true }, { n: 4 }));
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 4 }]);
    expect(records(stderr)).toEqual([
      { error: 'encode', reason: 'Do not know how to serialize a BigInt', source: 'stdin:2', stage: 'encoder JSON', frame: '{ n: 2, big: 10n }' },
      {
        error: 'encode',
        reason: expect.stringMatching(/^Converting circular structure to JSON/),
        source: 'stdin:3',
        stage: 'encoder JSON',
        frame: '<ref *1> { n: 3, self: [Circular *1] }',
      },
    ]);
  });

  it('the output: the line of the message it could not write', async () => {
    const template = join(dir, 'by-name', '%{name}.log');
    const input = ndjson({ n: 1, drop: true, name: 'a' }, { n: 2, name: 'a' }, { n: 3, copies: 2 }, { n: 4, name: 'b' });
    const { code, stderr } = await runHere(['--filter', './split.mjs', '--output', 'File', '--output_options', JSON.stringify({ filename: template, mkdir: true })], input);
    expect(code).toBe(0);
    expect(records(stderr)).toEqual([
      { error: 'output', reason: `field 'name' missing for filename ${template}`, source: 'stdin:3', stage: 'output File', frame: '{"n":3,"copy":0,"bad":false}' },
      { error: 'output', reason: `field 'name' missing for filename ${template}`, source: 'stdin:3', stage: 'output File', frame: '{"n":3,"copy":1,"bad":false}' },
    ]);
    expect(readFileSync(join(dir, 'by-name', 'b.log'), 'utf8')).toBe('{"n":4,"name":"b"}\n');
  });

  it('a message a filter made (flush, push, a timer) has the filter that made it as its source', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './hold.mjs', '--filter', './parse.mjs'], ndjson({ n: 1 }, { n: 2 }));
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(records(stderr)).toEqual([{ error: 'filter', reason: 'cannot parse 2', source: 'filter:./hold.mjs', stage: 'filter ./parse.mjs', frame: '{"summary":2,"bad":true}' }]);
  });
});

describe.concurrent("a filter's own failures name it", () => {
  it.each([
    ['./bad-flush.mjs', 'disk gone'],
    ['./rejecting-flush.mjs', 'late failure'],
  ])('%s: a flush that fails is one line naming the filter, status 1; the filters after it still give back what they hold', async (name, reason) => {
    const { code, stdout, stderr } = await runHere(['--filter', name, '--filter', './hold.mjs'], ndjson({ n: 1 }, { n: 2 }));
    expect(stderr).toBe(`message-passing: filter ${name}: flush failed: ${reason}\n`);
    expect(code).toBe(1);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { summary: 2, bad: true }]);
  });

  it('an exception from a timer or promise the module starts as it loads or is made is a record naming it; the run goes on', async () => {
    const tool = start(['--filter', './restless.mjs', '--stats'], { cwd: dir });
    await tool.waitFor('stderr', /(\{"error":"filter".*\n){4}/);
    tool.child.stdin!.end(ndjson({ n: 1 }));
    const { code, stdout, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }]);
    const failures = records(stderr.split('\n').filter((line) => line.startsWith('{')).join('\n'));
    expect(failures.map((r) => r.reason).sort()).toEqual(
      ['at load', 'from the constructor', 'rejected at load', 'rejected in the constructor'].map((why) => `in a timer or callback: ${why}`),
    );
    for (const failure of failures) expect(failure).toMatchObject({ error: 'filter', source: 'filter:./restless.mjs', stage: 'filter ./restless.mjs' });
    expect(stats(stderr)).toEqual({ in: 1, created: 0, out: 1, dropped: 0, errors: 0 });
  });

  it('push refuses what is not a message with a record naming the filter; nothing is lost and the counts add up', async () => {
    const tool = start(['--filter', './junk-pusher.mjs', '--stats'], { cwd: dir });
    tool.child.stdin!.write(ndjson({ n: 1 }));
    await tool.waitFor('stdout', '{"pushed":1}');
    tool.child.stdin!.end(ndjson({ n: 2 }));
    await tool.waitFor('stdout', '{"pushed":2}').catch(() => undefined);
    const { code, stdout, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout).slice(0, 2)).toEqual([{ n: 1 }, { pushed: 1 }]);
    const refusals = records(stderr.split('\n').filter((line) => line.startsWith('{')).join('\n')).slice(0, 4);
    expect(refusals).toEqual(
      ['undefined', 'null', 'function', 'symbol'].map((kind) => ({
        error: 'filter',
        reason: `push() takes a message or a list of them, got ${kind}`,
        source: 'filter:./junk-pusher.mjs',
        stage: 'filter ./junk-pusher.mjs',
      })),
    );
    const counts = stats(stderr);
    expect(counts.in + counts.created).toBe(counts.out + counts.dropped + counts.errors);
    expect(counts.errors).toBe(0);
  });
});

describe.concurrent('--stats adds up: in + created = out + dropped + errors', () => {
  it('with every way a user filter adds or takes messages, and a failure at each stage', async () => {
    const input = ndjson(
      { kind: 'x', do: 'fan' },
      { kind: 'x', do: 'empty' },
      { kind: 'x', do: 'drop' },
      { kind: 'x', do: 'null' },
      { kind: 'x', do: 'hold', n: 1 },
      { kind: 'x', do: 'hold', n: 2 },
      { kind: 'x', do: 'push' },
      { kind: 'x', do: 'async' },
      { kind: 'x', do: 'throw' },
      { kind: 'x', do: 'big' },
      { do: 'plain' },
      'not json',
    );
    const output = JSON.stringify({ filename: join(dir, 'kind-%{kind}.log') });
    const { code, stderr } = await runHere(['--filter', './everything.mjs', '--output', 'File', '--output_options', output, '--stats'], input);
    expect(code).toBe(0);
    // Created: 2 copies (fan), 2 pushed, 1 copy (async), the 2 held and a summary (flush).
    // Dropped: the empty list, undefined, null, the 2 held. Errors: a throw, a BigInt, no kind for the file name, not JSON.
    expect(stats(stderr)).toEqual({ in: 12, created: 8, out: 11, dropped: 5, errors: 4 });
    expect(readFileSync(join(dir, 'kind-x.log'), 'utf8').trimEnd().split('\n')).toHaveLength(11);
    expect(records(stderr.split('\n').filter((line) => line.startsWith('{')).join('\n')).map((r) => [r.error, r.source, r.stage])).toEqual([
      ['decode', 'stdin:12', undefined],
      ['filter', 'stdin:9', 'filter ./everything.mjs'],
      ['encode', 'stdin:10', 'encoder JSON'],
      ['output', 'stdin:11', 'output File'],
    ]);
  });

  it('with what a timer of schedule() makes', async () => {
    const tool = start(['--filter', './scheduler.mjs', '--stats'], { cwd: dir });
    tool.child.stdin!.write(ndjson({ n: 1 }, { n: 2 }));
    await tool.waitFor('stdout', '{"timer":2}');
    tool.child.stdin!.end(ndjson({ n: 3 }));
    const { code, stdout, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { timer: 1 }, { timer: 2 }]);
    expect(stats(stderr)).toEqual({ in: 3, created: 2, out: 4, dropped: 1, errors: 0 });
  });

  it('with built-in filters that merge, hold and make messages: Multiline, Dedupe, Threshold', async () => {
    const events = ndjson(
      { time: '2026-03-01T12:00:00Z', host: 'a', msg: 'Traceback' },
      { time: '2026-03-01T12:00:00Z', host: 'a', msg: '  at x' },
      { time: '2026-03-01T12:00:01Z', host: 'a', msg: 'Traceback' },
      { time: '2026-03-01T12:00:01Z', host: 'a', msg: '  at x' },
      { time: '2026-03-01T12:00:02Z', host: 'b', msg: 'ok' },
    );
    const { code, stdout, stderr } = await runHere(
      [
        '--filter', 'Multiline', '--filter_options', JSON.stringify({ field: 'msg', continue: '^  ', key: 'host' }),
        '--filter', 'Dedupe', '--filter_options', JSON.stringify({ time_field: 'time', key: ['msg'], window: '1m' }),
        '--filter', 'Threshold', '--filter_options', JSON.stringify({ when: { host: 'a' }, count: 1, within: '1m', time_field: 'time' }),
        '--stats',
      ],
      events,
    );
    expect(code).toBe(0);
    // Two traces of two lines each, repeated, then one line: a record with its repeats, an alert, the last line.
    expect((lines(stdout) as Array<Record<string, unknown>>).map((m) => [m.host, m.msg, m.repeats, m.alert])).toEqual([
      ['a', 'Traceback\n  at x', 2, undefined],
      [undefined, undefined, undefined, 'threshold'],
      ['b', 'ok', 1, undefined],
    ]);
    // What each filter merges or holds counts as dropped, what it makes (later, at the end) as created.
    expect(stats(stderr)).toEqual({ in: 5, created: 5, out: 3, dropped: 7, errors: 0 });
  });
});
