// Dedupe, Threshold and Inhibit through the real binary: the whole job (a burst, an
// alert, a root cause and its effects) in event time, counts that add up in --stats,
// a live stream closed by timers, SIGTERM with records held, and option errors.
import { describe, expect, it } from 'vitest';
import { lines, run, start } from './helpers.js';

type Record = { [field: string]: unknown };

const at = (time: string) => `2026-11-22T${time}Z`;
const ndjson = (messages: readonly unknown[]) => messages.map((m) => JSON.stringify(m)).join('\n') + '\n';
const options = (value: unknown) => JSON.stringify(value);

/** The counters of the last --stats line. */
function stats(stderr: string): { in: number; created: number; out: number; dropped: number; errors: number } {
  const line = stderr.split('\n').filter((l) => l.startsWith('message-passing: stats ')).at(-1);
  const match = /in=(\d+) created=(\d+) out=(\d+) dropped=(\d+) errors=(\d+) /.exec(line ?? '');
  if (!match) throw new Error(`no stats line in: ${stderr}`);
  const [, read, created, out, dropped, errors] = match.map(Number) as number[];
  return { in: read!, created: created!, out: out!, dropped: dropped!, errors: errors! };
}

describe.concurrent('windows, end to end', () => {
  it('the whole job: a burst once with its count, one alert for it, the root cause, and none of its effects within hold', async () => {
    const burst = Array.from({ length: 20 }, (_, i) => ({
      '@timestamp': at(`10:00:0${Math.floor(i / 10)}.${i % 10}00`),
      level: 'error',
      host: 'web-1',
      msg: 'upstream timeout',
    }));
    const db = (time: string, fields: Record) => ({ '@timestamp': at(time), host: 'db-1', ...fields });
    const effectBefore = db('10:00:04.500', { level: 'error', msg: 'slow query' });
    const cause = db('10:00:05', { level: 'critical', event: 'db_down' });
    const effects = [db('10:00:06', { level: 'error', msg: 'query failed' }), db('10:00:07', { level: 'error', msg: 'connection refused' })];
    const afterHold = db('10:30:00', { level: 'error', msg: 'query failed' });
    const input = ndjson([...burst, effectBefore, cause, ...effects, afterHold]);
    const time = { time_field: '@timestamp' };
    const { code, stdout, stderr } = await run(
      [
        '--filter', 'Threshold',
        '--filter_options', options({ ...time, when: { level: 'error' }, key: ['host'], count: 5, within: '1m', alert: 'error_burst', samples: 1 }),
        '--filter', 'Inhibit',
        '--filter_options', options({ ...time, rules: [{ source: { event: 'db_down' }, targets: [{ level: 'error' }], equal: ['host'], hold: '10m' }], wait: '30s' }),
        '--filter', 'Dedupe',
        '--filter_options', options({ ...time, window: '1m' }),
        '--stats', '60',
      ],
      { input },
    );
    expect(code, stderr).toBe(0);
    const out = lines(stdout) as Record[];
    expect(out.filter((m) => m.msg === 'upstream timeout')).toEqual([
      { ...burst[0], repeats: 20, first_time: at('10:00:00.000'), last_time: at('10:00:01.900') },
    ]);
    // The alert passed Dedupe too: it stands for one event, over the times it had.
    expect(out.filter((m) => 'alert' in m)).toEqual([
      {
        alert: 'error_burst',
        key: { host: 'web-1' },
        count: 5,
        first_time: at('10:00:00.000'),
        last_time: at('10:00:00.400'),
        within: '1m',
        samples: [burst[0]],
        '@timestamp': at('10:00:00.400'),
        repeats: 1,
      },
    ]);
    expect(out.filter((m) => m.event === 'db_down')).toMatchObject([cause]);
    // The effects of the cause, the one logged just before it included; the later error, past hold, goes on.
    expect(out.filter((m) => m.host === 'db-1' && m.level === 'error')).toMatchObject([{ ...afterHold, repeats: 1 }]);
    expect(out).toHaveLength(4);
    const counts = stats(stderr);
    expect(counts.in).toBe(25);
    expect(counts.out).toBe(4);
    expect(counts.errors).toBe(0);
    expect(counts.in + counts.created).toBe(counts.out + counts.dropped);
  });

  it('Dedupe: the repeats of the output add up to the events read, and --stats adds up', async () => {
    let seed = 11;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let clock = Date.parse(at('10:00:00'));
    const events = Array.from({ length: 3000 }, () => {
      clock += Math.floor(random() * 40);
      return { time: new Date(clock).toISOString(), level: 'error', msg: `failure ${Math.floor(random() * random() * 30)}` };
    });
    for (const extra of [{}, { emit: 'first' }, { align: 'sliding', window: '2s', max_keys: 10 }]) {
      const { code, stdout, stderr } = await run(['--filter', 'Dedupe', '--filter_options', options({ time_field: 'time', ...extra }), '--stats', '60'], {
        input: ndjson(events),
      });
      expect(code, stderr).toBe(0);
      const out = lines(stdout) as Array<{ repeats: number }>;
      expect(out.reduce((sum, m) => sum + m.repeats, 0), JSON.stringify(extra)).toBe(events.length);
      expect(out.length).toBeLessThan(events.length);
      const counts = stats(stderr);
      expect(counts).toMatchObject({ in: events.length, out: out.length, errors: 0 });
      expect(counts.in + counts.created).toBe(counts.out + counts.dropped);
    }
  });

  it('Dedupe on a live stream: the first occurrence at once, the count of its repeats once the window has passed, stdin still open', async () => {
    // Sliding: the window starts at the first line, so the three lines written at once share it.
    const tool = start(['--filter', 'Dedupe', '--filter_options', options({ emit: 'first', window: '300ms', align: 'sliding' })]);
    tool.child.stdin!.write('{"msg":"disk full"}\n{"msg":"disk full"}\n{"msg":"disk full"}\n');
    await tool.waitFor('stdout', /"repeats":1,/);
    await tool.waitFor('stdout', /"repeats":2,/);
    tool.child.stdin!.end();
    const { code, stdout } = await tool.done;
    expect(code).toBe(0);
    expect((lines(stdout) as Array<{ msg: string; repeats: number }>).map((m) => [m.msg, m.repeats])).toEqual([
      ['disk full', 1],
      ['disk full', 2],
    ]);
  });

  const multiline = { filter: 'Multiline', options: { start: '^[A-Z]+:', idle: '1h' }, decoder: 'Null', input: 'ERROR:root:x\n  more\n', out: ['ERROR:root:x\n  more'] };
  const held = [
    {
      filter: 'Dedupe',
      signal: 'SIGTERM',
      options: { window: '1h' },
      input: '{"msg":"a"}\n{"msg":"a"}\n{"msg":"b"}\n',
      out: [{ msg: 'a', repeats: 2 }, { msg: 'b', repeats: 1 }],
      counts: { in: 3, created: 2, out: 2, dropped: 3 },
    },
    { ...multiline, signal: 'SIGTERM', counts: { in: 2, created: 1, out: 1, dropped: 2 } },
    { ...multiline, signal: 'SIGINT', counts: { in: 2, created: 1, out: 1, dropped: 2 } },
    {
      filter: 'Inhibit',
      signal: 'SIGTERM',
      options: { rules: [{ source: { event: 'down' }, targets: [{ level: 'error' }] }], wait: '1h' },
      input: '{"level":"error"}\n',
      out: [{ level: 'error' }],
      counts: { in: 1, created: 1, out: 1, dropped: 1 },
    },
    { filter: 'Delay', signal: 'SIGTERM', options: { delay_for: '1h' }, input: '{"n":1}\n', out: [{ n: 1 }], counts: { in: 1, created: 1, out: 1, dropped: 1 } },
  ] as const;
  it.each(held)('$filter: $signal with stdin still open emits what it holds, exits 0, and --stats adds up', async ({ filter, signal, options: given, input, out, counts, ...rest }) => {
    const decoder = 'decoder' in rest ? ['--decoder', rest.decoder] : [];
    const tool = start([...decoder, '--filter', filter, '--filter_options', options(given), '--stats', '0.1']);
    tool.child.stdin!.write(input);
    await tool.waitFor('stderr', `stats in=${counts.in} `);
    // Held: nothing out before the signal.
    expect(tool.stdout).toBe('');
    tool.child.kill(signal);
    const { code, stdout, stderr } = await tool.done;
    expect(code, stderr).toBe(0);
    expect(lines(stdout)).toMatchObject(out);
    const final = stats(stderr);
    expect(final).toMatchObject(counts);
    expect(final.in + final.created).toBe(final.out + final.dropped + final.errors);
  });

  it.each([
    [['--filter', 'Threshold', '--filter_options', '{count: 5}'], "--filter Threshold: option 'within' is required"],
    [['--filter', 'Threshold', '--filter_options', '{count: 5, within: "1m", when: {level: "/[/"}}'], '--filter Threshold: when.level: Invalid regular expression'],
    [['--filter', 'Dedupe', '--filter_options', '{window: "1x"}'], "--filter Dedupe: option 'window' must be a duration"],
    [
      ['--filter', 'Inhibit', '--filter_options', '{rules: [{source: {event: "db_down"}, targets: [{level: "error"}], hold: "1 h"}]}'],
      '--filter Inhibit: rules[0].hold must be a duration',
    ],
  ])('%j is a usage error naming the plugin and option', async (args, message) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(message);
  });

  it('--list and --help name them, with examples', async () => {
    const list = await run(['--list']);
    expect(list.stdout).toMatch(/^ {2}Dedupe +Collapse repeats/m);
    expect(list.stdout).toMatch(/^ {2}Threshold +Emit an alert/m);
    expect(list.stdout).toMatch(/^ {2}Inhibit +Suppress the messages/m);
    const help = await run(['--help', 'Inhibit']);
    expect(help.stdout).toContain('Examples:\n  message-passing --filter Inhibit --filter_options');
  });
});
