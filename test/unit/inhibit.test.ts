// Inhibit's rules, hold, wait and self-inhibition, in event time (deterministic) and on a ManualClock.
import { describe, expect, it } from 'vitest';
import inhibit from '../../src/filters/inhibit.js';
import threshold from '../../src/filters/threshold.js';
import { at, harness, prepared } from './window-harness.js';

const dbDown = { source: { event: 'db_down' }, targets: [{ level: 'error' }, { level: 'warn', msg: '/timeout/' }], equal: ['host'], hold: '10m' };
const make = (options: Record<string, unknown>, start = 0) =>
  harness([{ plugin: inhibit, options: prepared(inhibit, 'Inhibit', { time_field: 'time', ...options }) }], start);
const log = (time: string, fields: Record<string, unknown>) => ({ host: 'db-1', time: at(time), ...fields });

describe('Inhibit', () => {
  it('drops the targets with the same equal fields for hold after the source, and nothing else', async () => {
    const h = await make({ rules: [dbDown] });
    const before = log('10:00:00', { level: 'error', msg: 'before the cause' });
    const cause = log('10:00:01', { event: 'db_down', level: 'critical' });
    const effects = [log('10:00:02', { level: 'error', msg: 'query failed' }), log('10:00:03', { level: 'warn', msg: 'read timeout' })];
    const unrelated = [log('10:00:04', { level: 'warn', msg: 'slow disk' }), log('10:00:05', { level: 'error', host: 'db-2', msg: 'other host' })];
    const afterHold = log('10:11:02', { level: 'error', msg: 'after the hold' });
    await h.send(before, cause, ...effects, ...unrelated, afterHold);
    await h.end();
    expect(h.out).toEqual([before, cause, ...unrelated, afterHold]);
    expect(h.chain.counters).toMatchObject({ in: 7, out: 5, dropped: 2, created: 0 });
  });

  it('by default holds a rule for "10m" after its source', async () => {
    const h = await make({ rules: [{ source: { event: 'db_down' }, targets: [{ level: 'error' }] }] });
    const cause = log('12:00:00', { event: 'db_down' });
    const passed = log('12:10:01', { level: 'error', n: 2 });
    await h.send(cause, log('12:09:59', { level: 'error', n: 1 }), passed);
    await h.end();
    expect(h.out).toEqual([cause, passed]);
  });

  it('drops an out-of-order target within lateness of the latest event; a later one passes, and waiting targets wait lateness longer', async () => {
    const rule = { source: { event: 'db_down' }, targets: [{ level: 'error' }], hold: '1m' };
    // 10:01:05 ends the hold of 10:00:00 (10:01:00) unless lateness holds the watermark back.
    const sequence = [log('10:00:00', { event: 'db_down' }), log('10:01:05', { level: 'info' }), log('10:00:58', { level: 'error' })];
    const late = await make({ rules: [rule], lateness: '10s' });
    await late.send(...sequence);
    expect(late.take()).toEqual(sequence.slice(0, 2));
    // 10:01:15 moves the watermark past 10:01:00: 10:00:59 is 16 s behind, more than lateness.
    const tooLate = log('10:00:59', { level: 'error' });
    await late.send(log('10:01:15', { level: 'info' }), tooLate);
    expect(late.take()).toEqual([log('10:01:15', { level: 'info' }), tooLate]);
    // Default lateness "0s": the same target already finds the source forgotten.
    const strict = await make({ rules: [rule] });
    await strict.send(...sequence);
    expect(strict.take()).toEqual(sequence);

    const waiting = await make({ rules: [rule], wait: '30s', lateness: '10s' });
    const target = log('10:00:00', { level: 'error' });
    // It waits 30 s plus lateness: an event 35 s after it is not enough, one 40 s after it is.
    await waiting.send(target, log('10:00:35', { level: 'info' }));
    expect(waiting.take()).toEqual([log('10:00:35', { level: 'info' })]);
    await waiting.send(log('10:00:40', { level: 'info' }));
    expect(waiting.take()).toEqual([target, log('10:00:40', { level: 'info' })]);
  });

  it('with wait, a root cause that arrives just after its effects still suppresses them; they go on later otherwise', async () => {
    const h = await make({ rules: [dbDown], wait: '30s' });
    const early = log('10:00:00', { level: 'error', msg: 'too early' });
    const effect = log('10:00:40', { level: 'error', msg: 'just before the cause' });
    const cause = log('10:01:00', { event: 'db_down' });
    await h.send(early, effect);
    // Each waits 30 s of event time: the early one has, once the event 40 s after it arrived.
    expect(h.take()).toEqual([early]);
    await h.send(cause);
    expect(h.take()).toEqual([cause]);
    await h.send(log('10:01:20', { level: 'info' }));
    await h.end();
    // 20 s after it, the cause suppressed the effect it came after.
    expect(h.out).toEqual([early, cause, log('10:01:20', { level: 'info' })]);
    const { in: read, created, out, dropped } = h.chain.counters;
    expect(read + created).toBe(out + dropped);
  });

  it('with action tag, passes suppressed messages on with inhibited_by', async () => {
    const h = await make({ rules: [{ ...dbDown, name: 'database' }, { source: { event: 'net_down' }, targets: [{ level: 'error' }] }], action: 'tag' });
    await h.send(log('10:00:00', { event: 'net_down', host: 'router' }), log('10:00:05', { level: 'error', msg: 'unreachable' }));
    expect(h.take()).toEqual([
      log('10:00:00', { event: 'net_down', host: 'router' }),
      // No equal fields: any net_down inhibits; the rule has no name, so its position says which.
      { ...log('10:00:05', { level: 'error', msg: 'unreachable' }), inhibited_by: { rule: 1, source_time: at('10:00:00.000') } },
    ]);
    await h.send(log('10:00:06', { event: 'db_down' }), log('10:00:07', { level: 'error' }));
    expect(h.take()[1]).toMatchObject({ inhibited_by: { rule: 'database', source_time: at('10:00:06.000') } });
  });

  it('a message that matches both sides of a rule does not inhibit itself nor its kind, but a plain source inhibits it', async () => {
    const flapping = { source: { alert: 'link_flap' }, targets: [{ alert: 'link_flap' }, { alert: 'packet_loss' }], hold: '5m' };
    const h = await make({ rules: [flapping] });
    const flap = (time: string) => ({ alert: 'link_flap', time: at(time) });
    await h.send(flap('10:00:00'), flap('10:00:10'), { alert: 'packet_loss', time: at('10:00:20') });
    expect(h.take()).toEqual([flap('10:00:00'), flap('10:00:10')]);

    const rootCause = { source: { alert: 'power_off' }, targets: [{ alert: 'power_off' }, { alert: 'link_flap' }] };
    const both = await make({ rules: [rootCause, flapping] });
    await both.send({ alert: 'power_off', time: at('10:00:00') }, flap('10:00:01'));
    expect(both.take()).toEqual([{ alert: 'power_off', time: at('10:00:00') }]);
  });

  it('works on alerts from Threshold, matching their key fields', async () => {
    const h = await harness([
      {
        plugin: threshold,
        options: prepared(threshold, 'Threshold', { when: { level: 'error' }, key: ['site'], count: 2, within: '1m', alert: 'errors', samples: 0, pass: false, time_field: 'time' }),
      },
      {
        plugin: inhibit,
        options: prepared(inhibit, 'Inhibit', { rules: [{ source: { event: 'uplink_down' }, targets: [{ alert: 'errors' }], equal: ['key.site'] }], time_field: 'time' }),
      },
    ]);
    await h.send(
      { event: 'uplink_down', key: { site: 'paris' }, time: at('10:00:00') },
      { level: 'error', site: 'paris', time: at('10:00:01') },
      { level: 'error', site: 'paris', time: at('10:00:02') },
      { level: 'error', site: 'oslo', time: at('10:00:03') },
      { level: 'error', site: 'oslo', time: at('10:00:04') },
    );
    await h.end();
    expect(h.out).toMatchObject([{ event: 'uplink_down' }, { alert: 'errors', key: { site: 'oslo' }, count: 2 }]);
  });

  it('in arrival time, a waiting target goes on from a timer once wait has passed; the end lets the rest go', async () => {
    const h = await make({ rules: [dbDown], wait: '2s', time_field: undefined }, 1_000_000);
    await h.send({ host: 'db-1', level: 'error', msg: 'first' });
    await h.advance(1_000);
    await h.send({ host: 'db-1', level: 'error', msg: 'second' });
    expect(h.take()).toEqual([]);
    expect(h.acked()).toBe(0);
    await h.advance(1_000);
    expect(h.take()).toEqual([{ host: 'db-1', level: 'error', msg: 'first' }]);
    expect(h.acked()).toBe(1);
    await h.send({ host: 'db-1', event: 'db_down' });
    // The cause went on: what is kept of it holds nothing back.
    expect(h.acked()).toBe(2);
    await h.end();
    // The cause came 1 s after "second", within wait: suppressed.
    expect(h.take()).toEqual([{ host: 'db-1', event: 'db_down' }]);
    expect(h.acked()).toBe(3);
  });

  it('bounds waiting targets and sources by max_keys: the oldest target is checked and goes on at once, a forgotten source is warned of', async () => {
    const h = await make({ rules: [dbDown], wait: '1m', max_keys: 2 });
    const errors = [1, 2, 3].map((n) => log(`10:00:0${n}`, { level: 'error', n }));
    await h.send(...errors);
    expect(h.take()).toEqual([errors[0]]);
    await h.send(...['a', 'b', 'c'].map((host, i) => ({ event: 'db_down', host, time: at(`10:00:1${i}`) })));
    expect(h.warnings).toEqual([expect.stringMatching(/^Inhibit: more than max_keys \(2\) sources remembered at once/)]);
  });

  it('refuses malformed rules, saying which rule and key', () => {
    const bad = (rules: unknown) => () => prepared(inhibit, 'Inhibit', { rules });
    expect(() => prepared(inhibit, 'Inhibit', {})).toThrow(/--filter Inhibit: option 'rules' is required/);
    expect(bad([])).toThrow(/--filter Inhibit: rules must be a list of \{source/);
    expect(bad([{ source: { a: 1 } }])).toThrow(/rules\[0\]\.targets is required/);
    expect(bad([{ source: { a: 1 }, targes: [] }])).toThrow(/rules\[0\]: unknown key 'targes' \(did you mean 'targets'\?\)/);
    expect(bad([{ source: { a: 1 }, targets: [{ b: '/[/' }] }])).toThrow(/rules\[0\]\.targets\[0\]\.b: Invalid regular expression/);
    expect(bad([dbDown, { ...dbDown, hold: '10 m' }])).toThrow(/rules\[1\]\.hold must be a duration .* \(no space between the number and its unit\)/);
    expect(bad([{ ...dbDown, equal: [1] }])).toThrow(/rules\[0\]\.equal must be a field name or a list of field names/);
    expect(() => prepared(inhibit, 'Inhibit', { rules: [dbDown], action: 'mute' })).toThrow(/option 'action' must be one of drop, tag/);
  });
});
