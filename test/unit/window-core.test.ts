// What the window filters share: the due queue, the event clock and watermark, matchers and keys.
import { describe, expect, it } from 'vitest';
import { DueQueue, EventClock, isoTime, readEventTime } from '../../src/core/event-clock.js';
import { eventTime } from '../../src/core/time.js';
import { compileMatch, keyPart } from '../../src/core/match.js';
import type { FilterContext } from '../../src/core/plugin.js';
import { ManualClock } from '../../src/core/state.js';

describe('DueQueue', () => {
  it('gives items back in order of at, then of insertion, as a sorted list would, through pushes, pops and retain', () => {
    let seed = 3;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const queue = new DueQueue<{ at: number; n: number }>();
    let model: Array<{ at: number; n: number }> = [];
    const first = () => model.reduce((best, item) => (item.at < best.at || (item.at === best.at && item.n < best.n) ? item : best));
    for (let n = 0; n < 3000; n++) {
      const item = { at: Math.floor(random() * 50), n };
      queue.push(item);
      model.push(item);
      if (random() < 0.4) {
        const expected = first();
        model = model.filter((i) => i !== expected);
        expect(queue.pop()).toBe(expected);
      }
      if (n % 500 === 499) {
        // Entries that left otherwise (evicted) are dropped in bulk.
        queue.retain((i) => i.n % 7 !== 0);
        model = model.filter((i) => i.n % 7 !== 0);
      }
      expect(queue.size).toBe(model.length);
    }
    while (model.length > 0) {
      const expected = first();
      model = model.filter((i) => i !== expected);
      expect(queue.nextAt()).toBe(expected.at);
      expect(queue.pop()).toBe(expected);
    }
    expect(queue.pop()).toBeUndefined();
    expect(queue.nextAt()).toBe(Infinity);
  });

  it('keeps equal times in insertion order', () => {
    const queue = new DueQueue<{ at: number; n: number }>();
    for (let n = 0; n < 100; n++) queue.push({ at: n % 3, n });
    const out: number[] = [];
    for (let item = queue.pop(); item; item = queue.pop()) out.push(item.n);
    const expected = [0, 1, 2].flatMap((at) => Array.from({ length: 100 }, (_, n) => n).filter((n) => n % 3 === at));
    expect(out).toEqual(expected);
  });
});

describe('EventClock', () => {
  const contextOn = (clock: ManualClock, fired: string[]): FilterContext =>
    ({
      clock,
      schedule: (ms: number, fire: () => unknown) => clock.after(ms, () => fired.push(String(fire() ?? 'fired'))),
    }) as unknown as FilterContext;

  it('moves the watermark to the latest event time less lateness, never back, and not for messages without a time', () => {
    const clock = new ManualClock(5_000_000);
    const events = new EventClock(contextOn(clock, []), { timeField: 'ts', lateness: 2000, onTimer: () => undefined });
    expect(events.observe({ ts: '2026-11-22T10:00:10Z' })).toBe(Date.parse('2026-11-22T10:00:10Z'));
    expect(events.watermark).toBe(Date.parse('2026-11-22T10:00:08Z'));
    // Out of order: its own time, the watermark stays.
    expect(events.observe({ ts: 1795341605 })).toBe(Date.parse('2026-11-22T10:00:05Z'));
    expect(events.watermark).toBe(Date.parse('2026-11-22T10:00:08Z'));
    // No time: the latest event time, and the watermark stays.
    expect(events.observe({ msg: 'no time' })).toBe(Date.parse('2026-11-22T10:00:10Z'));
    expect(events.observe({ ts: 'yesterday' })).toBe(Date.parse('2026-11-22T10:00:10Z'));
    expect(events.watermark).toBe(Date.parse('2026-11-22T10:00:08Z'));
  });

  it('in arrival time, follows the clock', () => {
    const clock = new ManualClock(1000);
    const events = new EventClock(contextOn(clock, []), { timeField: undefined, lateness: 0, onTimer: () => undefined });
    expect(events.observe({ ts: '2026-11-22T10:00:10Z' })).toBe(1000);
    clock.advance(500);
    expect(events.observe('a line')).toBe(1500);
    expect(events.watermark).toBe(1500);
  });

  it('on a quiet stream, a timer moves the watermark on with the clock past a grace second and calls back, looking again at least once a second', () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    const events = new EventClock(contextOn(clock, fired), { timeField: 'ts', lateness: 0, onTimer: () => undefined });
    const latest = Date.parse('2026-11-22T10:00:00Z');
    events.observe({ ts: latest });
    events.wake(latest + 2500);
    clock.advance(999);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toHaveLength(1);
    expect(events.watermark).toBe(latest);
    // Quiet for two seconds: one past the grace second.
    events.wake(latest + 2500);
    clock.advance(1000);
    expect(fired).toHaveLength(2);
    expect(events.watermark).toBe(latest + 1000);
    // The callback sets the next timer itself (filters call wake from it); stop cancels one.
    events.wake(latest + 2500);
    events.stop();
    clock.advance(5000);
    expect(fired).toHaveLength(2);
  });
});

describe('readEventTime', () => {
  it('reads every time as eventTime does, the common form included, valid or not', () => {
    let seed = 5;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const pad = (n: number, width: number) => String(n).padStart(width, '0');
    const texts: unknown[] = ['2026-11-22T10:00:00.123Z', '2026-11-22T10:00:00Z', '2026-11-22 10:00:00,123', '2026-11-22t10:00:00.123z', 1795341600, 1795341600123, 'soon', '', null];
    for (let i = 0; i < 5_000; i++) {
      const year = pick([0, 99, 100, 999, 1900, 1970, 2000, 2024, 2026, 2100, 9999]);
      const month = pick([0, 1, 2, 4, 9, 11, 12, 13]);
      const day = pick([0, 1, 28, 29, 30, 31, 32]);
      const hour = pick([0, 9, 23, 24, 99]);
      const minute = pick([0, 59, 60]);
      const second = pick([0, 30, 59, 60, 61]);
      const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}`;
      texts.push(`${text}Z`, `${text}.${pad(Math.floor(random() * 1000), 3)}Z`, `${text}.5Z`, `${text}+01:00`, `${text.replace('T', 'x')}.000Z`, `${text}.0a0Z`);
    }
    const differ = texts.filter((text) => readEventTime(text) !== eventTime(text));
    expect(differ).toEqual([]);
    // The common form was read, not only left to eventTime.
    expect(texts.filter((text) => typeof text === 'string' && text.length === 24 && eventTime(text) !== undefined).length).toBeGreaterThan(300);
  });
});

describe('isoTime', () => {
  it('writes what toISOString writes, whatever the order of the times', () => {
    let seed = 9;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const times = [0, 59_999, 60_000, 1.5, 999.999, Date.parse('2026-11-22T10:00:59.999Z'), 253_402_300_799_999, 253_402_300_800_000, -1, -62_198_755_200_000];
    for (let i = 0; i < 5_000; i++) times.push(Math.floor(random() * 4e12) + (random() < 0.1 ? random() : 0), 1.7e12 + Math.floor(random() * 180_000));
    expect(times.filter((ms) => isoTime(ms) !== new Date(ms).toISOString())).toEqual([]);
  });
});

describe('matchers and keys', () => {
  it('compares values as text, tests regexes, takes any of a list, reads dotted paths and list elements', () => {
    const match = compileMatch({ status: '/^5\\d\\d$/', method: ['POST', 'PUT'], 'req.host': 'web-1', ok: false, tags: 'db' }, 'when');
    const base = { status: 503, method: 'PUT', req: { host: 'web-1' }, ok: 'false', tags: ['api', 'db'] };
    expect(match(base)).toBe(true);
    expect(match({ ...base, status: 200 })).toBe(false);
    expect(match({ ...base, method: 'GET' })).toBe(false);
    expect(match({ ...base, tags: ['api'] })).toBe(false);
    expect(match({ ...base, req: {} })).toBe(false);
    expect(match(undefined)).toBe(false);
    expect(compileMatch({ gone: null }, 'when')({ other: 1 })).toBe(true);
    expect(compileMatch(undefined, 'when')(undefined)).toBe(true);
  });

  it('gives different keys to values that would run into each other', () => {
    const key = (...values: unknown[]) => values.map(keyPart).join('');
    const pairs: unknown[][][] = [
      [['a,b', 'c'], ['a', 'b,c']],
      [['1'], [1]],
      [['null'], [null]],
      [[undefined], ['undefined']],
      [['12', '3'], ['1', '23']],
      [['x\u0001y'], ['x', 'y']],
      [[{ a: 1 }], ['{"a":1}']],
    ];
    for (const [left, right] of pairs) expect(key(...left!), JSON.stringify([left, right])).not.toBe(key(...right!));
    expect(key('a', 1, { b: [2] })).toBe(key('a', 1, { b: [2] }));
  });
});
