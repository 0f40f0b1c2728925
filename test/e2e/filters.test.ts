// User filter modules in every shape the contract allows, loaded from files and packages.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lines, run, start, stop, tempDir } from './helpers.js';

const dir = tempDir();
const modules: Record<string, string> = {
  'tag.mjs': 'export default (message, options) => ({ ...message, host: options.host });',
  'tag.cjs': "module.exports = (message, options) => ({ ...message, host: options.host, style: 'cjs' });",
  'count.mjs': `export default class CountSeen {
    seen = 0;
    constructor(options) { this.label = options.label; }
    filter(message) { this.seen++; return message; }
    flush() { return [{ [this.label]: this.seen }]; }
  }`,
  'count.cjs': `class CountSeen {
    constructor(options) { this.seen = 0; this.options = options; }
    filter(message) { this.seen++; return message; }
    async flush() { return { seen: this.seen }; }
  }
  module.exports = CountSeen;`,
  'object.mjs': `let total = 0;
  export default {
    filter(message) { total += message.n; return message; },
    flush() { return { total }; },
    close() { process.stderr.write('closed\\n'); },
  };`,
  'create.mjs': `export function create(options) {
    const prefix = options.prefix;
    return { filter: (message) => ({ ...message, id: prefix + message.n }) };
  }`,
  'later.mjs': `export function create(options, context) {
    return {
      filter(message) {
        // A stateful filter with a timer: it answers later, through context.push.
        setTimeout(() => context.push([{ later: message.n }]), 20);
        return message;
      },
    };
  }`,
  'named.mjs': 'export function filter(message) { return { ...message, named: true }; }',
  'slow.mjs': `export default async (message) => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 15));
    return message;
  };`,
  'fan.mjs': `export default (message) => {
    if (message.drop) return undefined;
    if (message.none) return null;
    if (message.copies !== undefined) return Array.from({ length: message.copies }, (_, i) => ({ n: message.n, copy: i }));
    if (message.wrap) return [[1, 2]];
    return message;
  };`,
  'throws.mjs': `export default (message) => {
    if (message.bad) throw new Error('cannot handle bad ' + message.n);
    return message;
  };`,
  'rejects.mjs': `export default async (message) => {
    if (message.bad) throw new Error('async failure');
    return message;
  };`,
  'number.mjs': 'export default 42;',
  'empty.cjs': 'module.exports = {};',
  'no-method.mjs': 'export default class Nothing { run(message) { return message; } }',
  'create-nothing.mjs': 'export function create() { return 7; }',
  'syntax.mjs': 'export default (message => ;',
  'never.mjs': 'export default () => new Promise(() => {});',
};
for (const [name, text] of Object.entries(modules)) writeFileSync(join(dir, name), text + '\n');

// Packages installed under node_modules: CommonJS with main, ES-only with exports, scoped.
const packages: Record<string, { manifest: object; file: string; text: string }> = {
  'mp-cjs-filter': { manifest: { main: 'lib/main.js' }, file: 'lib/main.js', text: 'module.exports = (m) => ({ ...m, by: "cjs package" });' },
  'mp-esm-filter': {
    manifest: { type: 'module', exports: { '.': { import: './index.js' } } },
    file: 'index.js',
    text: 'export default (m) => ({ ...m, by: "esm package" });',
  },
  '@acme/mp-tagger': { manifest: { type: 'module', exports: './tagger.js' }, file: 'tagger.js', text: 'export default (m) => ({ ...m, by: "scoped package" });' },
};
for (const [name, { manifest, file, text }] of Object.entries(packages)) {
  const root = join(dir, 'node_modules', name);
  mkdirSync(join(root, file, '..'), { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name, version: '1.0.0', ...manifest }));
  writeFileSync(join(root, file), text + '\n');
}

const numbered = (count: number, extra: (n: number) => object = () => ({})) =>
  Array.from({ length: count }, (_, i) => JSON.stringify({ n: i + 1, ...extra(i + 1) }) + '\n').join('');
const runHere = (args: string[], input = '') => run(args, { input, cwd: dir });

describe.concurrent('user filter shapes', () => {
  it('a plain function (ES module) gets each message and the options', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './tag.mjs', '--filter_options', '{host: "web-1"}'], numbered(2));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1, host: 'web-1' }, { n: 2, host: 'web-1' }]);
  });

  it('a plain function (CommonJS) loads too', async () => {
    const { stdout } = await runHere(['--filter', 'tag.cjs', '--filter_options', '{host: "db"}'], numbered(1));
    expect(lines(stdout)).toEqual([{ n: 1, host: 'db', style: 'cjs' }]);
  });

  it('a class is built once with its options; what flush returns comes out at the end', async () => {
    const { code, stdout } = await runHere(['--filter', './count.mjs', '--filter_options', '{label: "seen"}'], numbered(3));
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { seen: 3 }]);
  });

  it('a CommonJS class with an async flush, followed by another filter that sees the flushed message', async () => {
    const { stdout } = await runHere(['--filter', './count.cjs', '--filter', './tag.mjs', '--filter_options', '{}', '--filter_options', '{host: "h"}'], numbered(2));
    expect(lines(stdout)).toEqual([{ n: 1, host: 'h' }, { n: 2, host: 'h' }, { seen: 2, host: 'h' }]);
  });

  it('an object with filter, flush and close', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './object.mjs'], numbered(4));
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { total: 10 }]);
    expect(stderr).toBe('closed\n');
  });

  it('a named create(options) that returns the filter', async () => {
    const { stdout } = await runHere(['--filter', './create.mjs', '--filter_options', '{prefix: "ev-"}'], numbered(2));
    expect(lines(stdout)).toEqual([{ n: 1, id: 'ev-1' }, { n: 2, id: 'ev-2' }]);
  });

  it('create(options, context) gets a context whose push sends messages on later, from a timer', async () => {
    const tool = start(['--filter', join(dir, 'later.mjs')], { cwd: dir });
    tool.child.stdin!.write('{"n":1}\n');
    await tool.waitFor('stdout', '{"later":1}\n');
    tool.child.stdin!.end('{"n":2}\n');
    await tool.waitFor('stdout', '{"n":2}\n');
    tool.child.kill('SIGTERM');
    const { code, stdout } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout).slice(0, 3)).toEqual([{ n: 1 }, { later: 1 }, { n: 2 }]);
  });

  it('a module whose named exports are filter()', async () => {
    const { stdout } = await runHere(['--filter', './named.mjs'], numbered(1));
    expect(lines(stdout)).toEqual([{ n: 1, named: true }]);
  });

  it('an async filter with random delays keeps the order', async () => {
    const { code, stdout } = await runHere(['--filter', './slow.mjs', '--filter', './slow.mjs'], numbered(200));
    expect(code).toBe(0);
    expect((lines(stdout) as { n: number }[]).map((m) => m.n)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it('an array fans out, undefined and null drop, a wrapped array goes on as one message', async () => {
    const input = [{ n: 1 }, { n: 2, drop: true }, { n: 3, copies: 3 }, { n: 4, none: true }, { n: 5, wrap: true }, { n: 6, copies: 0 }, { n: 7 }]
      .map((m) => JSON.stringify(m) + '\n')
      .join('');
    const { code, stdout, stderr } = await runHere(['--filter', './fan.mjs', '--stats'], input);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 3, copy: 0 }, { n: 3, copy: 1 }, { n: 3, copy: 2 }, [1, 2], { n: 7 }]);
    expect(stderr).toMatch(/in=7 created=2 out=6 dropped=3 errors=0/);
  });
});

describe.concurrent('user filter failures', () => {
  it('a filter that throws sends that message to the error output and the chain goes on', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './throws.mjs'], numbered(4, (n) => ({ bad: n === 2 })));
    expect(code).toBe(0);
    expect((lines(stdout) as { n: number }[]).map((m) => m.n)).toEqual([1, 3, 4]);
    expect(lines(stderr)).toEqual([{ error: 'filter', reason: 'cannot handle bad 2', source: 'stdin:2', stage: 'filter ./throws.mjs', frame: '{"n":2,"bad":true}' }]);
  });

  it('an async filter that rejects does the same', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './rejects.mjs'], numbered(3, (n) => ({ bad: n === 1 })));
    expect(code).toBe(0);
    expect((lines(stdout) as { n: number }[]).map((m) => m.n)).toEqual([2, 3]);
    expect(lines(stderr)).toMatchObject([{ error: 'filter', reason: 'async failure', frame: '{"n":1,"bad":true}' }]);
  });

  it.each([
    ['./number.mjs', /must export a function, a class, an object with filter\(message\), or create\(options\); it exports number/],
    ['./empty.cjs', /must export .*; it exports an object without filter\(\)/],
    ['./no-method.mjs', /filter \.\/no-method\.mjs: its class has no filter\(message\) method/],
    ['./create-nothing.mjs', /filter \.\/create-nothing\.mjs: create\(options\) must return an object with filter\(message\); it returned number/],
    ['./syntax.mjs', /cannot load filter \.\/syntax\.mjs: /],
    ['./missing.mjs', /filter module \.\/missing\.mjs not found \(looked for .*missing\.mjs\)/],
    ['no-such-package-for-mp', /'no-such-package-for-mp' is neither a built-in filter \(see --list\) nor an npm package installed here \(run: npm install no-such-package-for-mp; or give a file path like \.\/no-such-package-for-mp\.js\)/],
    ['nul', /unknown filter 'nul' \(did you mean 'Null'\?\)/],
  ])('%s is a usage error: exit 2, one line, nothing on stdout', async (name, message) => {
    const { code, stdout, stderr } = await runHere(['--filter', name], numbered(1));
    expect(stdout).toBe('');
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('a filter whose promise never settles ends with status 1 and says so, not a silent 0', async () => {
    const { code, stdout, stderr } = await runHere(['--filter', './never.mjs'], numbered(2));
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expect(stderr).toMatch(/^message-passing: .*promise that never settles\n$/);
  });
});

describe.concurrent('user filters from npm packages', () => {
  it.each([
    ['mp-cjs-filter', 'cjs package'],
    ['mp-esm-filter', 'esm package'],
    ['@acme/mp-tagger', 'scoped package'],
    ['+mp-cjs-filter', 'cjs package'],
  ])('%s resolves from the current folder', async (name, by) => {
    const { code, stdout, stderr } = await runHere(['--filter', name], numbered(1));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1, by }]);
  });
});

describe.concurrent('built-in filters pass on any JSON value as the one message it is', () => {
  // null and lists are messages, not a drop or several messages, whichever filter lets them through.
  // (No string: Parse and Multiline read a string as a line.)
  const values = 'null\n[1,2]\n[]\n3\n{"a":1}\n';
  it.each([
    ['Null', {}],
    ['Key', { key: 'level', match: 'debug', negate: true }],
    ['Delay', { delay_for: '0s' }],
    ['Parse', { pattern: '^x$', on_mismatch: 'pass' }],
    ['Multiline', { start: '^x' }],
    ['Threshold', { key: ['host'], count: 2, within: '1m', when: { level: 'error' }, pass: true }],
    ['Inhibit', { rules: [{ source: { event: 'down' }, targets: [{ level: 'error' }], equal: ['host'] }] }],
  ])('%s', async (filter, options) => {
    const { code, stdout, stderr } = await run(['--filter', filter, '--filter_options', JSON.stringify(options), '--stats'], { input: values });
    expect(code, stderr).toBe(0);
    expect(stdout).toBe(values);
    expect(stderr).toMatch(/stats in=5 created=0 out=5 dropped=0 errors=0 /);
  });
});

describe.concurrent('a filter context used from timers and callbacks', () => {
  it('push takes one message, a list or a string (one message); a throw in a timer is a record naming the filter, and the run goes on', async () => {
    writeFileSync(
      join(dir, 'timers.mjs'),
      [
        'export default class Timers {',
        '  constructor(options, context) { this.context = context; }',
        '  filter(message) {',
        '    if (message.n === 1) setTimeout(() => { this.context.push({ hi: 1 }); this.context.push([{ a: 1 }, { b: 2 }]); this.context.push("hello"); }, 5);',
        "    if (message.n === 2) setTimeout(() => { throw new Error('late boom'); }, 5);",
        '    return message;',
        '  }',
        '}',
      ].join('\n') + '\n',
    );
    const tool = start(['--filter', './timers.mjs', '--stats'], { cwd: dir });
    tool.child.stdin!.write('{"n":1}\n');
    await tool.waitFor('stdout', '"hello"');
    tool.child.stdin!.write('{"n":2}\n');
    await tool.waitFor('stderr', 'late boom');
    tool.child.stdin!.end('{"n":3}\n');
    const { code, stdout, stderr } = await tool.done;
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { hi: 1 }, { a: 1 }, { b: 2 }, 'hello', { n: 2 }, { n: 3 }]);
    const [record, stats] = stderr.trim().split('\n');
    expect(JSON.parse(record!)).toEqual({ error: 'filter', reason: 'in a timer or callback: late boom', source: 'filter:./timers.mjs', stage: 'filter ./timers.mjs' });
    // The record of a throw outside filter() is not a message: the counts still add up.
    expect(stats).toMatch(/in=3 created=4 out=7 dropped=0 errors=0 /);
  });

  it('warn prints a line; reportError writes a record naming the filter, which --stats does not count; stopping aborts on SIGTERM', async () => {
    writeFileSync(
      join(dir, 'context.mjs'),
      [
        'export default class Context {',
        '  constructor(options, context) {',
        '    this.context = context;',
        "    context.stopping.addEventListener('abort', () => context.warn('stopping'));",
        '  }',
        '  filter(message) {',
        "    if (message.n === 1) this.context.warn('saw one');",
        "    if (message.n === 2) { this.context.reportError({ error: 'filter', reason: 'two is odd', source: 'mine' }); return undefined; }",
        "    if (message.n === 3) this.context.reportError({ error: 'filter', reason: 'three passes', source: 'mine', stage: 'own' });",
        '    return message;',
        '  }',
        '}',
      ].join('\n') + '\n',
    );
    const tool = start(['--filter', './context.mjs', '--stats'], { cwd: dir });
    tool.child.stdin!.write(numbered(3));
    await tool.waitFor('stdout', '{"n":3}');
    const { code, stdout, stderr } = await stop(tool);
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([{ n: 1 }, { n: 3 }]);
    const [warning, two, three, stopping, stats] = stderr.trim().split('\n');
    expect(warning).toBe('message-passing: saw one');
    expect(JSON.parse(two!)).toEqual({ error: 'filter', reason: 'two is odd', source: 'mine', stage: 'filter ./context.mjs' });
    expect(JSON.parse(three!)).toEqual({ error: 'filter', reason: 'three passes', source: 'mine', stage: 'own' });
    expect(stopping).toBe('message-passing: stopping');
    // The message reported and dropped counts as dropped, the one reported and passed on as out.
    expect(stats).toMatch(/in=3 created=0 out=2 dropped=1 errors=0 /);
  });

  it('a module may declare its options schema: they are validated like a built-in\'s, defaults applied', async () => {
    writeFileSync(
      join(dir, 'with-schema.mjs'),
      "export const options = { host: { type: 'string', required: true, description: 'Host name to add.' }, level: { type: 'string', default: 'info', description: 'Level.' } };\n" +
        'export default (message, options) => ({ ...message, host: options.host, level: options.level });\n',
    );
    const good = await run(['--filter', './with-schema.mjs', '--filter_options', '{host: "web-1"}'], { cwd: dir, input: '{"n":1}\n' });
    expect(good.code).toBe(0);
    expect(lines(good.stdout)).toEqual([{ n: 1, host: 'web-1', level: 'info' }]);
    const bad = await run(['--filter', './with-schema.mjs', '--filter_options', '{hots: "web-1"}'], { cwd: dir, input: '{"n":1}\n' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("message-passing: --filter ./with-schema.mjs: unknown option 'hots' (did you mean 'host'?)\n");
  });
});
