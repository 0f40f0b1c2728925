// Perl's small filters: Key selects, All drops, Delay holds each message for a
// while (on a hand-driven clock), in order, and lets everything go at the end.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import all from '../../src/filters/all.js';
import delay from '../../src/filters/delay.js';
import key from '../../src/filters/key.js';
import { harness, prepare } from './filter-harness.js';

async function passed(options: object, messages: readonly unknown[], codec: 'json' | 'null' = 'json') {
  const h = await harness(key, options, codec);
  h.send(messages);
  await h.end();
  expect(h.counters.out + h.counters.dropped).toBe(messages.length);
  return h.out;
}

describe('Key', () => {
  const messages = [
    { level: 'error', n: 1 },
    { level: 'errors', n: 2 },
    { level: 'info', n: 3 },
    { n: 4 },
    { level: null, n: 5 },
    { level: { name: 'error' }, n: 6 },
  ];

  it('eq: passes the messages whose field is exactly match; drops the others on purpose', async () => {
    expect(await passed({ key: 'level', match: 'error' }, messages)).toEqual([{ level: 'error', n: 1 }]);
  });

  it('regex: match is found anywhere unless anchored', async () => {
    expect(await passed({ key: 'level', match: 'err', match_type: 'regex' }, messages)).toEqual([messages[0], messages[1]]);
    expect(await passed({ key: 'level', match: '^error$', match_type: 'regex' }, messages)).toEqual([messages[0]]);
  });

  it('negate passes what does not match, including messages without the field', async () => {
    expect(await passed({ key: 'level', match: 'error', negate: true }, messages)).toEqual(messages.slice(1));
  });

  it('follows a dotted path, and compares numbers and booleans as text (0 and "" too)', async () => {
    const nested = [{ http: { status: 503 } }, { http: { status: 200 } }, { 'http.status': 502 }, { http: 'x' }];
    expect(await passed({ key: 'http.status', match: '^5', match_type: 'regex' }, nested)).toEqual([nested[0], nested[2]]);
    expect(await passed({ key: 'ok', match: 'false' }, [{ ok: false }, { ok: true }])).toEqual([{ ok: false }]);
    expect(await passed({ key: 'n', match: '0' }, [{ n: 0 }, { n: 1 }])).toEqual([{ n: 0 }]);
    expect(await passed({ key: 's', match: '' }, [{ s: '' }, { s: 'x' }, {}])).toEqual([{ s: '' }]);
  });

  it('a text line (--decoder Null) has no fields: it never matches', async () => {
    expect(await passed({ key: 'message', match: 'x' }, ['x'], 'null')).toEqual([]);
    expect(await passed({ key: 'message', match: 'x', negate: true }, ['x'], 'null')).toEqual(['x']);
  });

  it('needs key and match; a bad regular expression is a usage error', () => {
    expect(() => prepare(key, { match: 'x' })).toThrow("option 'key' is required");
    expect(() => prepare(key, { key: 'x' })).toThrow("option 'match' is required");
    expect(() => prepare(key, { key: 'x', match: '[', match_type: 'regex' })).toThrow(UsageError);
    expect(() => prepare(key, { key: 'x', match: '[', match_type: 'regex' })).toThrow(`option 'match' "[" is not a valid regular expression: Unterminated character class`);
    expect(() => prepare(key, { key: 'x', match: '[' })).not.toThrow();
    expect(() => prepare(key, { key: 'x', match: 'y', match_type: 'like' })).toThrow(/one of eq, regex/);
  });
});

describe('All', () => {
  it('drops every message on purpose, and flush adds nothing', async () => {
    const h = await harness(all, {});
    const done = h.send([{ a: 1 }, { b: 2 }]);
    await h.end();
    expect(h.out).toEqual([]);
    expect(h.counters).toMatchObject({ in: 2, out: 0, dropped: 2, created: 0 });
    expect(done()).toBe(true);
  });
});

describe('Delay', () => {
  it('sends each message on delay_for after it came, in order', async () => {
    const h = await harness(delay, { delay_for: '1s' });
    h.send([{ n: 1 }, { n: 2 }]);
    h.clock.advance(400);
    h.send([{ n: 3 }]);
    h.clock.advance(599);
    expect(h.out).toEqual([]);
    h.clock.advance(1);
    expect(h.out).toEqual([{ n: 1 }, { n: 2 }]);
    h.clock.advance(399);
    expect(h.out).toHaveLength(2);
    h.clock.advance(1);
    expect(h.out).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await h.end();
    expect(h.counters).toMatchObject({ in: 3, created: 3, out: 3, dropped: 3 });
  });

  it('lets everything still waiting go at the end, without waiting', async () => {
    const h = await harness(delay, { delay_for: '1h' });
    const done = h.send(['a', 'b', 'c']);
    expect(done()).toBe(false);
    await h.end();
    expect(h.out).toEqual(['a', 'b', 'c']);
    expect(done()).toBe(true);
  });

  it('acknowledges a batch only once its messages went on', async () => {
    const h = await harness(delay, { delay_for: '100ms' });
    const first = h.send([{ n: 1 }]);
    h.clock.advance(50);
    const second = h.send([{ n: 2 }]);
    h.clock.advance(50);
    expect([first(), second()]).toEqual([true, false]);
    h.clock.advance(50);
    expect([first(), second()]).toEqual([true, true]);
  });

  it('past max_messages waiting, the oldest goes on early, in order', async () => {
    const h = await harness(delay, { delay_for: '1s', max_messages: 2 });
    h.send([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    expect(h.out).toEqual([{ n: 1 }, { n: 2 }]);
    h.clock.advance(1000);
    expect(h.out).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
  });

  it('with delay_for 0 passes messages straight on', async () => {
    const h = await harness(delay, { delay_for: 0 });
    h.send([{ n: 1 }]);
    expect(h.out).toEqual([{ n: 1 }]);
  });

  it('needs delay_for, as a duration', () => {
    expect(() => prepare(delay, {})).toThrow("option 'delay_for' is required");
    expect(() => prepare(delay, { delay_for: '1' })).toThrow(/'delay_for' must be a duration/);
  });
});
