import { describe, expect, it } from 'vitest';
import { KeyedState, ManualClock, type HoldKeeper } from '../../src/core/state.js';

const keeper: HoldKeeper = { currentHold: () => undefined, hold: () => undefined, release: () => undefined };

describe('KeyedState', () => {
  it('knows its oldest key through takes, re-creations and evictions', () => {
    const evicted: string[] = [];
    const state = new KeyedState<number>({ maxKeys: 3, evict: (key, value) => (evicted.push(key), { key, value }) }, keeper);
    state.set('a', 1);
    state.set('b', 2);
    state.set('c', 3);
    expect(state.oldestKey()).toBe('a');
    state.take('a');
    expect(state.oldestKey()).toBe('b');
    // Re-created, 'a' is now the youngest.
    state.set('a', 4);
    expect(state.set('d', 5)).toEqual([{ key: 'b', value: 2 }]);
    expect(evicted).toEqual(['b']);
    expect(state.oldestKey()).toBe('c');
    // Updating a key does not make it younger.
    state.set('c', 6);
    expect(state.set('e', 7)).toEqual([{ key: 'c', value: 6 }]);
    expect([...state.keys()].sort()).toEqual(['a', 'd', 'e']);
    expect(state.takeAll().map(([key]) => key)).toEqual(['a', 'd', 'e']);
    expect(state.oldestKey()).toBeUndefined();
  });

  it('stays the size of what it holds while keys come and go around a long-lived one', () => {
    const state = new KeyedState<number>({ maxKeys: 1000, evict: () => undefined }, keeper);
    state.set('long', 0);
    for (let i = 0; i < 100_000; i++) {
      state.set(`k${i}`, i);
      state.take(`k${i}`);
    }
    expect(state.oldestKey()).toBe('long');
    expect((state as unknown as { ageKeys: string[] }).ageKeys.length).toBeLessThan(100);
  });

  it('evicts one key per insertion past max_keys, oldest first, over 200,000 distinct keys', () => {
    let evictions = 0;
    let last = -1;
    const state = new KeyedState<number>({ maxKeys: 10_000, evict: (_key, value) => ((evictions++, (last = value)), undefined) }, keeper);
    for (let i = 0; i < 200_000; i++) state.set(`k${i}`, i);
    expect(evictions).toBe(190_000);
    expect(last).toBe(189_999);
    expect(state.size).toBe(10_000);
  });
});

describe('ManualClock', () => {
  it('fires timers in time order as it advances, each at its own time', () => {
    const clock = new ManualClock(1000);
    const fired: Array<[string, number]> = [];
    clock.after(30, () => fired.push(['b', clock.now()]));
    clock.after(10, () => fired.push(['a', clock.now()]));
    const cancel = clock.after(20, () => fired.push(['cancelled', clock.now()]));
    cancel();
    clock.advance(25);
    expect(fired).toEqual([['a', 1010]]);
    clock.advance(5);
    expect(fired).toEqual([['a', 1010], ['b', 1030]]);
    expect(clock.now()).toBe(1030);
  });
});
