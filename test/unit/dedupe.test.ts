// Dedupe's windows, in event time (deterministic) and in arrival time on a ManualClock.
import { describe, expect, it } from 'vitest';
import dedupe from '../../src/filters/dedupe.js';
import type { Message } from '../../src/core/plugin.js';
import { at, harness, prepared } from './window-harness.js';

const make = (options: Record<string, unknown>, start = 0) => harness([{ plugin: dedupe, options: prepared(dedupe, 'Dedupe', options) }], start);
const eventTime = { time_field: 'time' };
const repeatsOf = (messages: Message[]) => messages.reduce<number>((sum, m) => sum + ((m as { repeats?: number }).repeats ?? 0), 0);

describe('Dedupe, emit "end"', () => {
  it('emits each event once when its window closes, with its count and first and last times, in order of first occurrence', async () => {
    const h = await make(eventTime);
    await h.send(
      { msg: 'disk full', time: at('10:00:00.100') },
      { msg: 'retrying', time: at('10:00:00.200') },
      { msg: 'disk full', time: at('10:00:00.500') },
      { msg: 'disk full', time: at('10:00:00.900') },
    );
    expect(h.take()).toEqual([]);
    // An event in the next second closes the window of the first.
    await h.send({ msg: 'disk full', time: at('10:00:01.200') });
    expect(h.take()).toEqual([
      { msg: 'disk full', time: at('10:00:00.100'), repeats: 3, first_time: at('10:00:00.100'), last_time: at('10:00:00.900') },
      { msg: 'retrying', time: at('10:00:00.200'), repeats: 1, first_time: at('10:00:00.200'), last_time: at('10:00:00.200') },
    ]);
    await h.end();
    expect(h.take()).toEqual([{ msg: 'disk full', time: at('10:00:01.200'), repeats: 1, first_time: at('10:00:01.200'), last_time: at('10:00:01.200') }]);
    expect(repeatsOf(h.out)).toBe(5);
    const { in: read, created, out, dropped, errors } = h.chain.counters;
    expect(read + created).toBe(out + dropped + errors);
    expect(dropped).toBeGreaterThan(0);
  });

  it('by default leaves the time fields out of the key, and with key compares only those fields', async () => {
    const h = await make(eventTime);
    await h.send(
      { msg: 'x', time: at('10:00:00.100'), timestamp: 1, '@timestamp': 'a', created: 1.5 },
      { msg: 'x', time: at('10:00:00.200'), timestamp: 2, '@timestamp': 'b', created: 2.5 },
      { msg: 'x', pid: 7, time: at('10:00:00.300') },
    );
    await h.end();
    expect(h.out.map((m) => (m as { repeats: number }).repeats)).toEqual([2, 1]);

    const keyed = await make({ ...eventTime, key: ['host'] });
    await keyed.send({ host: 'a', n: 1, time: at('10:00:00.100') }, { host: 'a', n: 2, time: at('10:00:00.200') }, { host: 'b', n: 3, time: at('10:00:00.300') });
    await keyed.end();
    expect(keyed.out).toMatchObject([{ host: 'a', n: 1, repeats: 2 }, { host: 'b', n: 3, repeats: 1 }]);
  });

  it('tumbling windows sit at whole multiples of window; sliding ones start at the first occurrence', async () => {
    const events = [at('10:00:00.900'), at('10:00:01.100'), at('10:00:01.800')].map((time) => ({ msg: 'same', time }));
    const tumbling = await make(eventTime);
    await tumbling.send(...events);
    await tumbling.end();
    expect(tumbling.out.map((m) => (m as { repeats: number }).repeats)).toEqual([1, 2]);

    const sliding = await make({ ...eventTime, align: 'sliding' });
    await sliding.send(...events);
    await sliding.end();
    // 0.9 opens [0.9, 1.9): all three fall in it.
    expect(sliding.out).toMatchObject([{ repeats: 3, first_time: at('10:00:00.900'), last_time: at('10:00:01.800') }]);
  });

  it('counts out-of-order events within lateness in their window; a later one stands alone', async () => {
    const h = await make({ ...eventTime, lateness: '2s' });
    await h.send(
      { msg: 'a', time: at('10:00:00.500') },
      { msg: 'a', time: at('10:00:02.100') },
      // Late but within 2 s of the latest: still in the window of 10:00:00.
      { msg: 'a', time: at('10:00:00.700') },
    );
    expect(h.take()).toEqual([]);
    await h.send({ msg: 'a', time: at('10:00:03.500') });
    expect(h.take()).toMatchObject([{ repeats: 2, first_time: at('10:00:00.500'), last_time: at('10:00:00.700') }]);
    // Later than lateness allows: its window's record went out already.
    await h.send({ msg: 'a', time: at('10:00:00.800') });
    expect(h.take()).toMatchObject([{ repeats: 1, first_time: at('10:00:00.800') }]);
    await h.end();
    expect(repeatsOf(h.out)).toBe(5);
  });

  it('wraps messages that are not objects, and reads a string as {message: line}', async () => {
    const h = await make({});
    await h.send('GET / 200', 'GET / 200', 42);
    await h.end();
    expect(h.out).toEqual([
      { message: 'GET / 200', repeats: 2, first_time: expect.any(String), last_time: expect.any(String) },
      { message: 42, repeats: 1, first_time: expect.any(String), last_time: expect.any(String) },
    ]);
  });
});

describe('Dedupe, emit "first"', () => {
  it('sends the first occurrence at once and one message with the count of its repeats when the window closes', async () => {
    const h = await make({ ...eventTime, emit: 'first', window: '10s' });
    await h.send({ msg: 'boom', time: at('10:00:01') });
    expect(h.take()).toEqual([{ msg: 'boom', time: at('10:00:01'), repeats: 1, first_time: at('10:00:01.000'), last_time: at('10:00:01.000') }]);
    await h.send({ msg: 'boom', time: at('10:00:02') }, { msg: 'boom', time: at('10:00:03') }, { msg: 'other', time: at('10:00:04') });
    expect(h.take()).toMatchObject([{ msg: 'other', repeats: 1 }]);
    await h.send({ msg: 'boom', time: at('10:00:11') });
    expect(h.take()).toEqual([
      { msg: 'boom', time: at('10:00:02'), repeats: 2, first_time: at('10:00:02.000'), last_time: at('10:00:03.000') },
      { msg: 'boom', time: at('10:00:11'), repeats: 1, first_time: at('10:00:11.000'), last_time: at('10:00:11.000') },
    ]);
    await h.end();
    // "other" and the last "boom" never repeated: nothing more to say about them.
    expect(h.take()).toEqual([]);
    expect(repeatsOf(h.out)).toBe(5);
  });

  it('reports an event that never stops once per window, never hiding it', async () => {
    const h = await make({ ...eventTime, emit: 'first' });
    const stream = Array.from({ length: 50 }, (_, i) => ({ msg: 'flapping', time: at(`10:00:0${Math.floor(i / 10)}.${String((i % 10) * 100).padStart(3, '0')}`) }));
    await h.send(...stream);
    await h.end();
    // Five seconds: five first occurrences and five summaries of nine repeats.
    expect(h.out.map((m) => (m as { repeats: number }).repeats)).toEqual([1, 9, 1, 9, 1, 9, 1, 9, 1, 9]);
    expect(repeatsOf(h.out)).toBe(50);
  });
});

describe('Dedupe in arrival time and when the stream goes quiet', () => {
  it('closes windows from a timer, in stream order, without an event to push them', async () => {
    const h = await make({ window: '1s' }, 5_000);
    await h.send({ msg: 'a' }, { msg: 'a' }, { msg: 'b' });
    await h.advance(999);
    expect(h.take()).toEqual([]);
    await h.advance(1);
    expect(h.take()).toMatchObject([
      { msg: 'a', repeats: 2, first_time: '1970-01-01T00:00:05.000Z' },
      { msg: 'b', repeats: 1 },
    ]);
    expect(h.chain.counters).toMatchObject({ in: 3, created: 2, out: 2, dropped: 3 });
  });

  it('with a time field, a quiet stream closes a window once quiet a second longer than the window had left', async () => {
    const h = await make({ ...eventTime, window: '10s' }, 1_000_000);
    await h.send({ msg: 'a', time: at('10:00:03') }, { msg: 'a', time: at('10:00:04') });
    // The window ends at 10:00:10, six seconds of event time after the latest event.
    await h.advance(6_999);
    expect(h.take()).toEqual([]);
    await h.advance(1);
    expect(h.take()).toMatchObject([{ msg: 'a', repeats: 2 }]);
  });

  it('with a time field, a pause of less than a second between reads is not a quiet stream', async () => {
    const h = await make({ ...eventTime, window: '1s' }, 1_000_000);
    await h.send({ msg: 'a', time: at('10:00:00.500') });
    await h.advance(999);
    // Still in the window of 10:00:00, though the input paused longer than the window had left.
    await h.send({ msg: 'a', time: at('10:00:00.900') });
    await h.end();
    expect(h.out).toMatchObject([{ msg: 'a', repeats: 2 }]);
  });

  it('holds the acknowledgement of a batch until the records of the messages it held are out', async () => {
    const h = await make({ window: '1s' });
    await h.send({ msg: 'a' });
    expect(h.acked()).toBe(0);
    await h.advance(1_000);
    expect(h.out).toHaveLength(1);
    expect(h.acked()).toBe(1);
    // A repeat in a later batch holds that batch too; the end lets both go.
    await h.send({ msg: 'b' });
    await h.send({ msg: 'b' });
    expect(h.acked()).toBe(1);
    await h.end();
    expect(h.acked()).toBe(3);
  });
});

describe('Dedupe after Dedupe, or after Threshold', () => {
  it('counts a record as its repeats over its span, so that counts still add up across stages', async () => {
    const stage = (window: string) => ({ plugin: dedupe, options: prepared(dedupe, 'Dedupe', { ...eventTime, window }) });
    const h = await harness([stage('1s'), stage('1m')]);
    const events = ['10:00:00.100', '10:00:00.200', '10:00:01.500', '10:00:02.500', '10:00:02.600', '10:00:02.700'].map((t) => ({ msg: 'x', time: at(t) }));
    await h.send(...events);
    await h.end();
    expect(h.out).toEqual([{ msg: 'x', time: at('10:00:00.100'), repeats: 6, first_time: at('10:00:00.100'), last_time: at('10:00:02.700') }]);
  });

  it('keeps the first and last times a message already carries (an alert)', async () => {
    const h = await make(eventTime);
    await h.send({ alert: 'errors', first_time: at('09:59:00.000'), last_time: at('10:00:00.000'), time: at('10:00:00') });
    await h.end();
    expect(h.out).toMatchObject([{ alert: 'errors', repeats: 1, first_time: at('09:59:00.000'), last_time: at('10:00:00.000') }]);
  });
});

describe('Dedupe memory bound', () => {
  it('past max_keys emits the oldest event early, marked cut, losing no count', async () => {
    const h = await make({ ...eventTime, max_keys: 2, window: '1m' });
    await h.send({ k: 1, time: at('10:00:01') }, { k: 1, time: at('10:00:02') }, { k: 2, time: at('10:00:03') });
    expect(h.take()).toEqual([]);
    await h.send({ k: 3, time: at('10:00:04') });
    expect(h.take()).toEqual([{ k: 1, time: at('10:00:01'), repeats: 2, first_time: at('10:00:01.000'), last_time: at('10:00:02.000'), cut: 'max_keys' }]);
    // k=1 again starts a new record, and evicts k=2.
    await h.send({ k: 1, time: at('10:00:05') });
    expect(h.take()).toMatchObject([{ k: 2, repeats: 1, cut: 'max_keys' }]);
    await h.end();
    expect(h.take()).toMatchObject([{ k: 3, repeats: 1 }, { k: 1, repeats: 1 }]);
    expect(repeatsOf(h.out)).toBe(5);
  });

  it('keeps the sum of repeats equal to the events read over a random stream, whatever the options', async () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const options of [
      { window: '2s' },
      { window: '2s', emit: 'first' },
      { window: '3s', align: 'sliding', lateness: '1s' },
      { window: '1s', emit: 'first', max_keys: 3, lateness: '500ms' },
    ]) {
      const h = await make({ ...eventTime, ...options });
      let time = Date.parse(at('10:00:00'));
      const sent: unknown[] = [];
      for (let batch = 0; batch < 20; batch++) {
        const messages = Array.from({ length: 25 }, () => {
          time += Math.floor(random() * 300);
          // Now and then an event from up to 1.5 s back.
          const t = random() < 0.1 ? time - Math.floor(random() * 1500) : time;
          return { msg: `event ${Math.floor(random() * 6)}`, time: new Date(t).toISOString() };
        });
        sent.push(...messages);
        await h.send(...messages);
      }
      await h.end();
      expect(repeatsOf(h.out), JSON.stringify(options)).toBe(sent.length);
      const { in: read, created, out, dropped, errors } = h.chain.counters;
      expect(read + created, JSON.stringify(options)).toBe(out + dropped + errors);
      expect(h.acked()).toBe(20);
    }
  });
});

describe('Dedupe options', () => {
  it('refuses fields that collide and malformed durations, naming the option', () => {
    expect(() => prepared(dedupe, 'Dedupe', { count_field: 'n', first_field: 'n' })).toThrow(/--filter Dedupe: count_field, first_field and last_field must differ/);
    expect(() => prepared(dedupe, 'Dedupe', { window: '1 s' })).toThrow(/--filter Dedupe: option 'window' must be a duration/);
    expect(() => prepared(dedupe, 'Dedupe', { window: 0 })).toThrow(/option 'window' must be at least 1ms/);
    expect(() => prepared(dedupe, 'Dedupe', { emit: 'last' })).toThrow(/option 'emit' must be one of end, first/);
  });
});
