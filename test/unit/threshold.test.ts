// Threshold's sliding count, realert, keys and bounds, in event time (deterministic).
import { describe, expect, it } from 'vitest';
import threshold from '../../src/filters/threshold.js';
import { at, harness, prepared } from './window-harness.js';

/** Event time from the field time, unless options say time_field: undefined (arrival time). */
const make = (options: Record<string, unknown>, start = 0) =>
  harness([{ plugin: threshold, options: prepared(threshold, 'Threshold', { time_field: 'time', ...options }) }], start);
const error = (time: string, extra: Record<string, unknown> = {}) => ({ level: 'error', host: 'web-1', time: at(time), ...extra });
const alerts = (messages: unknown[]) => messages.filter((m) => typeof m === 'object' && m !== null && 'alert' in m) as Array<Record<string, unknown>>;

describe('Threshold', () => {
  it('emits the alert right after the message that reaches the count, with the first messages as samples', async () => {
    const h = await make({ when: { level: 'error' }, key: ['host'], count: 3, within: '10s', alert: 'errors', samples: 2 });
    await h.send(error('10:00:00', { n: 1 }), { level: 'info', host: 'web-1', time: at('10:00:01') }, error('10:00:04', { n: 2 }));
    expect(alerts(h.take())).toEqual([]);
    await h.send(error('10:00:09', { n: 3 }), error('10:00:09.500', { n: 4 }));
    expect(h.take()).toEqual([
      error('10:00:09', { n: 3 }),
      {
        alert: 'errors',
        key: { host: 'web-1' },
        count: 3,
        first_time: at('10:00:00.000'),
        last_time: at('10:00:09.000'),
        within: '10s',
        samples: [error('10:00:00', { n: 1 }), error('10:00:04', { n: 2 })],
        // With time_field, the alert says when it happened there too.
        time: at('10:00:09.000'),
      },
      // The count starts again after an alert.
      error('10:00:09.500', { n: 4 }),
    ]);
    await h.end();
    expect(alerts(h.out)).toHaveLength(1);
    const { in: read, created, out, dropped, errors } = h.chain.counters;
    expect([read, created, out, dropped, errors]).toEqual([5, 1, 6, 0, 0]);
  });

  it('counts in a sliding window: a burst across the boundary of a window opened earlier still alerts', async () => {
    const h = await make({ count: 3, within: '10s' });
    // A window opened at 0 would hold 0 and 8; one opened at 12 would hold 12 and 13. The last 10 s hold 8, 12 and 13.
    await h.send(error('10:00:00'), error('10:00:08'), error('10:00:12'));
    expect(alerts(h.take())).toEqual([]);
    await h.send(error('10:00:13'));
    expect(alerts(h.take())).toMatchObject([{ alert: 'threshold', key: {}, count: 3, first_time: at('10:00:08.000'), last_time: at('10:00:13.000') }]);
  });

  it('keeps only as many messages as samples: the first of a window, then later ones in the places of those that left it', async () => {
    const h = await make({ count: 4, within: '10s', samples: 2 });
    await h.send(error('10:00:00', { n: 1 }), error('10:00:01', { n: 2 }), error('10:00:02', { n: 3 }), error('10:00:03', { n: 4 }));
    expect(alerts(h.take())).toMatchObject([{ samples: [{ n: 1 }, { n: 2 }] }]);
    const sliding = await make({ count: 3, within: '10s', samples: 2 });
    await sliding.send(error('10:00:00', { n: 1 }), error('10:00:08', { n: 2 }), error('10:00:09', { n: 3 }));
    expect(alerts(sliding.take())).toMatchObject([{ samples: [{ n: 1 }, { n: 2 }] }]);
    // 10:00:00 leaves the window before the count is reached; 10:00:08 came when there was no room: 10:00:12 takes the place.
    const slid = await make({ count: 3, within: '10s', samples: 1 });
    await slid.send(error('10:00:00', { n: 1 }), error('10:00:08', { n: 2 }), error('10:00:12', { n: 3 }), error('10:00:13', { n: 4 }));
    expect(alerts(slid.take())).toMatchObject([{ count: 3, first_time: at('10:00:08.000'), samples: [{ n: 3 }] }]);
  });

  it('keeps one count per key, and alerts a key again only once realert has passed', async () => {
    const h = await make({ key: ['host'], count: 2, within: '1m', realert: '5m' });
    await h.send(error('10:00:00'), error('10:00:01', { host: 'web-2' }), error('10:00:02'));
    expect(alerts(h.take())).toMatchObject([{ key: { host: 'web-1' }, last_time: at('10:00:02.000') }]);
    await h.send(error('10:01:00'), error('10:01:01'), error('10:03:00', { host: 'web-2' }));
    // web-1 again within 5 minutes: quiet; web-2 counted 10:00:01 and 10:03:00, more than 1m apart: no alert.
    expect(alerts(h.take())).toEqual([]);
    await h.send(error('10:05:02'), error('10:05:03'));
    expect(alerts(h.take())).toMatchObject([{ key: { host: 'web-1' }, first_time: at('10:05:02.000'), last_time: at('10:05:03.000') }]);
    // A key field that is missing reads as null.
    const missing = await make({ key: ['host', 'service'], count: 1, within: '1s' });
    await missing.send(error('10:00:00'));
    expect(alerts(missing.take())).toMatchObject([{ key: { host: 'web-1', service: null } }]);
  });

  it('matches when with values compared as text, regexes, lists and dotted paths; other messages pass untouched', async () => {
    const h = await make({ when: { status: '/^5\\d\\d$/', 'req.method': ['POST', 'PUT'] }, count: 2, within: '1m', pass: false });
    const hit = (time: string, status: number | string) => ({ status, req: { method: 'POST' }, time: at(time) });
    await h.send(hit('10:00:00', 503), { status: 200, req: { method: 'POST' }, time: at('10:00:01') }, { status: 500, req: { method: 'GET' }, time: at('10:00:02') });
    // pass false: the matching message is absorbed, the two others go on.
    expect(h.take()).toEqual([{ status: 200, req: { method: 'POST' }, time: at('10:00:01') }, { status: 500, req: { method: 'GET' }, time: at('10:00:02') }]);
    await h.send(hit('10:00:03', '500'));
    expect(h.take()).toMatchObject([{ alert: 'threshold', count: 2, samples: [hit('10:00:00', 503), hit('10:00:03', '500')] }]);
    await h.end();
    const { in: read, created, out, dropped } = h.chain.counters;
    expect(read + created).toBe(out + dropped);
    expect(dropped).toBe(1);

    const text = await make({ when: { code: 500, ok: false }, count: 1, within: '1s' });
    await text.send({ code: '500', ok: 'false', time: at('10:00:00') }, { code: 5000, ok: false, time: at('10:00:00') });
    expect(alerts(text.take())).toHaveLength(1);
  });

  it('by default alerts a key again only after realert "5m", with the first 3 messages as samples', async () => {
    const h = await make({ count: 1, within: '1m' });
    await h.send(error('12:00:00'), error('12:04:59'), error('12:05:01'));
    expect(alerts(h.take()).map((alert) => alert.last_time)).toEqual([at('12:00:00.000'), at('12:05:01.000')]);
    const sampled = await make({ count: 5, within: '1m' });
    await sampled.send(...[1, 2, 3, 4, 5].map((n) => error(`12:00:0${n}`, { n })));
    expect(alerts(sampled.take())).toMatchObject([{ count: 5, samples: [{ n: 1 }, { n: 2 }, { n: 3 }] }]);
  });

  it('counts an out-of-order event within lateness before its key is let go; one later than that starts a new count', async () => {
    const info = (time: string) => ({ level: 'info', time: at(time) });
    // 10:00:11 closes the count of 10:00:00 (due 10:00:10) unless lateness holds the watermark back.
    const sequence = [error('10:00:00', { host: 'a' }), info('10:00:11'), error('10:00:09.500', { host: 'a' })];
    const late = await make({ when: { level: 'error' }, key: ['host'], count: 2, within: '10s', lateness: '2s' });
    await late.send(...sequence);
    expect(alerts(late.take())).toMatchObject([{ key: { host: 'a' }, count: 2, first_time: at('10:00:00.000'), last_time: at('10:00:09.500') }]);
    // 10:01:12.500 moves the watermark past 10:01:10: the late 10:01:09.500 is 3 s behind, more than lateness.
    await late.send(error('10:01:00', { host: 'b' }), info('10:01:12.500'), error('10:01:09.500', { host: 'b' }));
    expect(alerts(late.take())).toEqual([]);
    // Default lateness "0s": the same late event already finds its key let go.
    const strict = await make({ when: { level: 'error' }, key: ['host'], count: 2, within: '10s' });
    await strict.send(...sequence);
    expect(alerts(strict.take())).toEqual([]);
  });

  it('with pass false, holds the acknowledgements of the messages it absorbed until an alert or a quiet key lets them go', async () => {
    const h = await make({ count: 3, within: '10s', pass: false, time_field: undefined }, 1_000_000);
    await h.send(error('10:00:00'));
    await h.send(error('10:00:01'));
    // Were the process killed now, the count could be rebuilt from these batches.
    expect(h.acked()).toBe(0);
    await h.send(error('10:00:02'));
    expect(alerts(h.take())).toHaveLength(1);
    expect(h.acked()).toBe(3);
    await h.send(error('10:00:03'));
    expect(h.acked()).toBe(3);
    await h.advance(10_000);
    expect(h.acked()).toBe(4);

    // With pass true the messages went on: nothing is held back.
    const passing = await make({ count: 3, within: '10s', time_field: undefined });
    await passing.send(error('10:00:00'));
    expect(passing.acked()).toBe(1);
  });

  it('past max_keys starts the oldest key again and says so once', async () => {
    const h = await make({ key: ['host'], count: 2, within: '1m', max_keys: 2 });
    await h.send(error('10:00:00', { host: 'a' }), error('10:00:01', { host: 'b' }), error('10:00:02', { host: 'c' }), error('10:00:03', { host: 'd' }));
    expect(h.warnings).toEqual([expect.stringMatching(/^Threshold threshold: more than max_keys \(2\) keys counted at once: the oldest key's count starts again/)]);
    // a was forgotten: its second error starts a new count; d is still counted.
    await h.send(error('10:00:04', { host: 'a' }), error('10:00:05', { host: 'd' }));
    expect(alerts(h.take())).toMatchObject([{ key: { host: 'd' } }]);
  });

  it('refuses a bad when, a missing count or within, naming the option', () => {
    expect(() => prepared(threshold, 'Threshold', { within: '1m' })).toThrow(/--filter Threshold: option 'count' is required/);
    expect(() => prepared(threshold, 'Threshold', { count: 2 })).toThrow(/--filter Threshold: option 'within' is required/);
    expect(() => prepared(threshold, 'Threshold', { count: 2, within: '1m', when: 'error' })).toThrow(
      /--filter Threshold: when must be an object of field: value/,
    );
    expect(() => prepared(threshold, 'Threshold', { count: 2, within: '1m', when: { level: '/(/' } })).toThrow(/--filter Threshold: when\.level: Invalid regular expression/);
    expect(() => prepared(threshold, 'Threshold', { count: 2, within: '1m', when: { level: '/x/g' } })).toThrow(/when\.level: flags g and y/);
    expect(() => prepared(threshold, 'Threshold', { count: 2, within: '1m', when: { level: { eq: 1 } } })).toThrow(/when\.level must be a string, number, boolean, null, "\/regex\/" or a list/);
    expect(() => prepared(threshold, 'Threshold', { count: 0, within: '1m' })).toThrow(/option 'count' must be at least 1/);
  });
});
