import { beforeAll, describe, expect, it } from 'vitest';
import jsonCodec from '../../src/codecs/json.js';
import nullCodec from '../../src/codecs/null.js';
import { Chain, type Counters } from '../../src/core/chain.js';
import { framePasses, planPassThrough } from '../../src/core/passthrough.js';
import type { Codec, Filter, FilterContext, FilterResult, Frame, FrameBatch, Input, InputContext, Message, Output } from '../../src/core/plugin.js';
import { ManualClock } from '../../src/core/state.js';

let json: Codec;
let raw: Codec;
beforeAll(async () => {
  json = await jsonCodec.create({}, {});
  raw = await nullCodec.create({}, {});
});

/** A door writes wait at while it is shut. */
class Gate {
  private waiting: Array<() => void> = [];
  shut = true;

  /** Undefined when open; else a promise resolved when it opens. */
  pass(): Promise<void> | undefined {
    if (!this.shut) return undefined;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  open(): void {
    this.shut = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

/**
 * An output in memory: `written` is what it was handed, `delivered` what it
 * finished writing (at once, or once its gate opened).
 */
class MemoryOutput implements Output {
  readonly written: string[] = [];
  readonly delivered: string[] = [];
  readonly calls: string[] = [];
  passThrough?: 'lines' | 'frames';
  writeLines?: (bytes: Buffer, count: number) => void | Promise<void>;
  /** While shut, write returns a pending promise. */
  gate: Gate | undefined;
  /** While shut, settled() returns a pending promise. */
  settleGate: Gate | undefined;
  closed = false;

  constructor(options: { passThrough?: 'lines' | 'frames'; slow?: boolean; settles?: boolean } = {}) {
    this.passThrough = options.passThrough;
    if (options.slow) this.gate = new Gate();
    if (options.settles) this.settleGate = new Gate();
    if (options.passThrough === 'lines') {
      this.writeLines = (bytes, count) => {
        const lines = bytes.toString('utf8').split('\n').slice(0, -1);
        expect(lines).toHaveLength(count);
        this.calls.push(`lines ${count}`);
        return this.take(lines);
      };
    }
  }

  write(frames: readonly Frame[]): void | Promise<void> {
    this.calls.push(`write ${frames.length}`);
    return this.take(frames.map((f) => (typeof f === 'string' ? f : `bytes:${f.toString('utf8')}`)));
  }

  settled(): void | Promise<void> {
    return this.settleGate?.pass();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private take(lines: string[]): void | Promise<void> {
    this.written.push(...lines);
    const wait = this.gate?.pass();
    if (!wait) {
      this.delivered.push(...lines);
      return;
    }
    return wait.then(() => {
      this.delivered.push(...lines);
    });
  }
}

type MakeFilter = (context: FilterContext) => Filter;

interface Rig {
  chain: Chain;
  input: InputContext;
  output: MemoryOutput;
  errors: MemoryOutput;
  clock: ManualClock;
}

async function rig(
  filters: MakeFilter[] = [],
  options: { output?: MemoryOutput; errors?: MemoryOutput; decoder?: Codec; encoder?: Codec } = {},
): Promise<Rig> {
  const clock = new ManualClock(1_000_000);
  const output = options.output ?? new MemoryOutput();
  const errors = options.errors ?? new MemoryOutput();
  const chain = await Chain.build({
    decoder: options.decoder ?? json,
    encoder: options.encoder ?? json,
    errorOutput: errors,
    output: () => output,
    filters: filters.map((create, i) => ({ name: `f${i + 1}`, create })),
    clock,
    warn: () => undefined,
  });
  return { chain, input: chain.inputContext(), output, errors, clock };
}

/** An acknowledgement that records how often it was called and what was out at that moment. */
function ack(rig: Pick<Rig, 'output' | 'errors'>) {
  const record = {
    calls: 0,
    /** Output and error output as delivered when it was called (first call). */
    deliveredThen: undefined as string[] | undefined,
    errorsThen: undefined as string[] | undefined,
    ack: () => {
      record.calls++;
      record.deliveredThen ??= rig.output.delivered.slice();
      record.errorsThen ??= rig.errors.delivered.slice();
    },
  };
  return record;
}

function batch(frames: Frame[], ackFn?: () => void, first = 1): FrameBatch {
  return { frames, source: 'test', first, ack: ackFn };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Emits and waits for the chain to take the batch. */
async function emit(input: InputContext, b: FrameBatch): Promise<void> {
  await input.emit(b);
}

function identityHolds(c: Counters): void {
  expect(c.in + c.created).toBe(c.out + c.dropped + c.errors);
}

/** Runs the chain to its end (flush, close) with an input that runs `body`. */
function runWith(r: Rig, body: (input: InputContext) => Promise<void>): Promise<void> {
  const input: Input = { run: () => body(r.input) };
  return r.chain.run(input);
}

/** Holds each message in keyed state until the next one arrives (like a multi-line assembler); flush sends the last. */
const holdUntilNext: MakeFilter = (context) => {
  const state = context.keyed<Message>({ maxKeys: 10, evict: (_key, value) => value });
  return {
    filter(message) {
      const previous = state.take('last');
      const evicted = state.set('last', message);
      const out = previous === undefined ? [...evicted] : [previous, ...evicted];
      return out.length > 0 ? out : undefined;
    },
    flush: () => state.takeAll().map(([, value]) => value),
  };
};

const tag =
  (field: string): MakeFilter =>
  () => ({ filter: (m) => ({ ...(m as object), [field]: true }) });

describe('Chain acknowledgements', () => {
  it('acknowledges a batch once, after the output wrote every message', async () => {
    const r = await rig();
    const a = ack(r);
    await emit(r.input, batch(['{"n":1}', '{"n":2}', ''], a.ack));
    expect(a.calls).toBe(1);
    expect(a.deliveredThen).toEqual(['{"n":1}', '{"n":2}']);
    await emit(r.input, batch(['{"n":3}'], undefined, 4));
    await settle();
    expect(a.calls).toBe(1);
  });

  it('waits for a write that returns a pending promise', async () => {
    const r = await rig([], { output: new MemoryOutput({ slow: true }) });
    const a = ack(r);
    const taken = r.input.emit(batch(['{"n":1}', '{"n":2}'], a.ack));
    await settle();
    expect(r.output.written).toHaveLength(2);
    expect(a.calls).toBe(0);
    r.output.gate!.open();
    await taken;
    await settle();
    expect(a.calls).toBe(1);
    expect(a.deliveredThen).toEqual(['{"n":1}', '{"n":2}']);
  });

  it('waits for settled() when the output says writes are still in its buffers', async () => {
    const r = await rig([], { output: new MemoryOutput({ settles: true }) });
    const a = ack(r);
    const taken = r.input.emit(batch(['{"n":1}'], a.ack));
    await settle();
    expect(r.output.delivered).toEqual(['{"n":1}']);
    expect(a.calls).toBe(0);
    r.output.settleGate!.open();
    await taken;
    expect(a.calls).toBe(1);
  });

  it('acknowledges a batch a filter dropped entirely, at once', async () => {
    const r = await rig([() => ({ filter: () => undefined })]);
    const a = ack(r);
    await emit(r.input, batch(['{"n":1}', '{"n":2}'], a.ack));
    expect(a.calls).toBe(1);
    expect(r.chain.counters).toMatchObject({ in: 2, dropped: 2, out: 0 });
  });

  it('waits for the error output to write the records of a batch (decode, filter and encode errors)', async () => {
    const errors = new MemoryOutput({ slow: true, settles: true });
    const r = await rig(
      [
        () => ({
          filter(m) {
            const n = (m as { n: number }).n;
            if (n === 2) throw new Error('two is not allowed');
            if (n === 3) return { n: 3n };
            if (n === 4) return undefined;
            return m;
          },
        }),
      ],
      { errors },
    );
    const a = ack(r);
    const taken = r.input.emit(batch(['{"n":1}', 'not json', '{"n":2}', '{"n":3}', '{"n":4}'], a.ack));
    await settle();
    expect(r.output.delivered).toEqual(['{"n":1}']);
    expect(errors.written.map((l) => (JSON.parse(l) as { error: string }).error)).toEqual(['decode', 'filter', 'encode']);
    expect(a.calls).toBe(0);
    errors.gate!.open();
    await settle();
    // Written by the error output, but still in its buffers.
    expect(a.calls).toBe(0);
    errors.settleGate!.open();
    await taken;
    expect(a.calls).toBe(1);
    expect(a.errorsThen).toHaveLength(3);
    expect(r.chain.counters).toMatchObject({ in: 5, out: 1, dropped: 1, errors: 3, created: 0 });
  });

  it('a batch without an acknowledgement has no receipt: filters see no hold and keyed state holds nothing', async () => {
    const seen: unknown[] = [];
    let state: ReturnType<FilterContext['keyed']> | undefined;
    const r = await rig([
      (context) => {
        state = context.keyed<Message>({ maxKeys: 4, evict: (_k, v) => v });
        return {
          filter(m) {
            seen.push(context.currentHold());
            state!.set('k', m);
            return m;
          },
        };
      },
    ]);
    await emit(r.input, batch(['{"n":1}']));
    const a = ack(r);
    await emit(r.input, batch(['{"n":2}'], a.ack));
    expect(seen[0]).toBeUndefined();
    expect(seen[1]).toBeDefined();
    // The second batch stored into the same key: it is held until taken.
    expect(a.calls).toBe(0);
    state!.take('k');
    await settle();
    expect(a.calls).toBe(1);
  });
});

describe('Chain: messages held in keyed state', () => {
  it("hold their batch's acknowledgement until taken and delivered", async () => {
    const r = await rig([holdUntilNext], { output: new MemoryOutput({ slow: true }) });
    const a1 = ack(r);
    const a2 = ack(r);
    const a3 = ack(r);
    await runWith(r, async (input) => {
      await input.emit(batch(['{"n":1}'], a1.ack));
      await settle();
      expect(a1.calls).toBe(0);
      const second = input.emit(batch(['{"n":2}', '{"n":3}'], a2.ack, 2));
      await settle();
      // 1 is forwarded by the second batch, but its write has not finished.
      expect(r.output.written).toEqual(['{"n":1}', '{"n":2}']);
      expect(a1.calls).toBe(0);
      r.output.gate!.open();
      await second;
      await settle();
      expect(a1.calls).toBe(1);
      expect(a1.deliveredThen).toEqual(['{"n":1}', '{"n":2}']);
      // 3 is still held.
      expect(a2.calls).toBe(0);
      await input.emit(batch(['{"n":4}'], a3.ack, 4));
      await settle();
      expect(a2.calls).toBe(1);
      expect(a3.calls).toBe(0);
    });
    // flush() sent the last one on.
    expect(a3.calls).toBe(1);
    expect(a3.deliveredThen).toEqual(['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);
    expect([a1.calls, a2.calls]).toEqual([1, 1]);
    identityHolds(r.chain.counters);
    expect(r.chain.counters).toMatchObject({ in: 4, out: 4, dropped: 1, created: 1 });
  });

  it('hold their batch even behind a filter that answers with a promise', async () => {
    const asynchronous: MakeFilter = () => ({ filter: (m) => Promise.resolve(m) });
    const r = await rig([asynchronous, holdUntilNext]);
    const a1 = ack(r);
    const a2 = ack(r);
    await runWith(r, async (input) => {
      await input.emit(batch(['{"n":1}'], a1.ack));
      await settle();
      expect(r.output.delivered).toEqual([]);
      expect(a1.calls).toBe(0);
      await input.emit(batch(['{"n":2}'], a2.ack, 2));
      await settle();
      expect(a1.calls).toBe(1);
      expect(a2.calls).toBe(0);
    });
    expect(a2.calls).toBe(1);
    expect(r.output.delivered).toEqual(['{"n":1}', '{"n":2}']);
  });

  it('max_keys evicts the oldest key through evict (flushed, not dropped), releasing its holds', async () => {
    const evicted: string[] = [];
    const byKey: MakeFilter = (context) => {
      const state = context.keyed<Message>({
        maxKeys: 2,
        evict: (key, value) => {
          evicted.push(key);
          return { ...(value as object), evicted: true };
        },
      });
      return {
        filter(m) {
          const key = String((m as { k: string }).k);
          const out = state.set(key, m);
          return out.length > 0 ? [...out] : undefined;
        },
        flush: () => state.takeAll().map(([, v]) => v),
      };
    };
    const r = await rig([byKey]);
    const acks = [ack(r), ack(r), ack(r), ack(r)];
    await runWith(r, async (input) => {
      await input.emit(batch(['{"k":"a"}'], acks[0]!.ack, 1));
      await input.emit(batch(['{"k":"b"}'], acks[1]!.ack, 2));
      await settle();
      expect(acks.map((a) => a.calls)).toEqual([0, 0, 0, 0]);
      await input.emit(batch(['{"k":"c"}'], acks[2]!.ack, 3));
      await settle();
      expect(evicted).toEqual(['a']);
      expect(r.output.delivered).toEqual(['{"k":"a","evicted":true}']);
      expect(acks.map((a) => a.calls)).toEqual([1, 0, 0, 0]);
      await input.emit(batch(['{"k":"d"}'], acks[3]!.ack, 4));
      await settle();
      expect(acks.map((a) => a.calls)).toEqual([1, 1, 0, 0]);
    });
    expect(acks.map((a) => a.calls)).toEqual([1, 1, 1, 1]);
    expect(r.output.delivered).toEqual(['{"k":"a","evicted":true}', '{"k":"b","evicted":true}', '{"k":"c"}', '{"k":"d"}']);
    identityHolds(r.chain.counters);
  });

  it('a message a filter pushes while it filters goes on after the batch, and the batch still holds', async () => {
    const r = await rig([
      (context) => {
        const state = context.keyed<Message>({ maxKeys: 10, evict: (_k, v) => v });
        return {
          filter(m) {
            const n = (m as { n: number }).n;
            if (n === 1) context.push({ pushed: 1 });
            if (n === 2) {
              state.set('held', m);
              return undefined;
            }
            return m;
          },
          flush: () => state.takeAll().map(([, v]) => v),
        };
      },
      tag('seen'),
    ]);
    const a = ack(r);
    await runWith(r, async (input) => {
      await input.emit(batch(['{"n":1}', '{"n":2}', '{"n":3}'], a.ack));
      await settle();
      expect(r.output.delivered).toEqual(['{"n":1,"seen":true}', '{"n":3,"seen":true}', '{"pushed":1,"seen":true}']);
      expect(a.calls).toBe(0);
    });
    expect(a.calls).toBe(1);
    identityHolds(r.chain.counters);
  });
});

describe('Chain timers', () => {
  /** Holds each message and sends it on `ms` later, marked late, via context.schedule. */
  const delay =
    (ms: number): MakeFilter =>
    (context) => {
      const state = context.keyed<Message>({ maxKeys: 100, evict: (_k, v) => v });
      let next = 0;
      return {
        filter(m) {
          const key = String(next++);
          state.set(key, m);
          context.schedule(ms, () => {
            const held = state.take(key);
            return held === undefined ? undefined : { ...(held as object), late: context.clock.now() };
          });
          return undefined;
        },
        flush: () => state.takeAll().map(([, v]) => v),
      };
    };

  it('fire in stream order: after a batch still being written, before the next', async () => {
    const r = await rig([delay(100), tag('after')], { output: new MemoryOutput({ slow: true }) });
    const a1 = ack(r);
    await r.input.emit(batch(['{"n":1}'], a1.ack));
    await settle();
    expect(a1.calls).toBe(0);
    const second = r.input.emit(batch(['{"x":1}'], undefined, 2));
    r.clock.advance(100);
    const third = r.input.emit(batch(['{"x":2}'], undefined, 3));
    await settle();
    expect(r.output.written).toEqual(['{"n":1,"late":1000100,"after":true}']);
    expect(r.output.delivered).toEqual([]);
    r.output.gate!.open();
    await Promise.all([second, third]);
    await settle();
    // The timers of 1 and x:1 were due at 100; x:2's timer is not due yet.
    expect(r.output.delivered).toEqual(['{"n":1,"late":1000100,"after":true}', '{"x":1,"late":1000100,"after":true}']);
    expect(a1.calls).toBe(1);
    r.clock.advance(100);
    await settle();
    expect(r.output.delivered.at(-1)).toBe('{"x":2,"late":1000200,"after":true}');
    identityHolds(r.chain.counters);
  });

  it('never fire in the middle of a batch, even when the clock moves during it', async () => {
    const moving: MakeFilter = (context) => ({
      filter(m) {
        if ((m as { n: number }).n === 1) context.schedule(10, () => ({ timer: true }));
        // The clock moves while the batch is being filtered.
        if ((m as { n: number }).n === 2) (context.clock as ManualClock).advance(50);
        return m;
      },
    });
    const r = await rig([moving, tag('after')]);
    await r.input.emit(batch(['{"n":1}', '{"n":2}', '{"n":3}']));
    await settle();
    expect(r.output.delivered).toEqual([
      '{"n":1,"after":true}',
      '{"n":2,"after":true}',
      '{"n":3,"after":true}',
      '{"timer":true,"after":true}',
    ]);
    identityHolds(r.chain.counters);
    expect(r.chain.counters.created).toBe(1);
  });

  it('can be cancelled, and a cancelled timer sends nothing', async () => {
    const r = await rig([
      (context) => ({
        filter(m) {
          const cancel = context.schedule(10, () => ({ never: true }));
          cancel();
          return m;
        },
      }),
    ]);
    await r.input.emit(batch(['{"n":1}']));
    r.clock.advance(100);
    await settle();
    expect(r.output.delivered).toEqual(['{"n":1}']);
  });

  it('a timer that throws is an error record; the chain goes on', async () => {
    const r = await rig([
      (context) => ({
        filter(m) {
          context.schedule(10, () => {
            throw new Error('timer broke');
          });
          return m;
        },
      }),
    ]);
    await r.input.emit(batch(['{"n":1}']));
    r.clock.advance(10);
    await settle();
    expect(r.errors.delivered.map((l) => JSON.parse(l) as unknown)).toEqual([{ error: 'filter', reason: 'in a timer or callback: timer broke', source: 'filter:f1', stage: 'filter f1' }]);
    await r.input.emit(batch(['{"n":2}'], undefined, 2));
    expect(r.output.delivered).toEqual(['{"n":1}', '{"n":2}']);
  });
});

describe('Chain: push and counters', () => {
  it('push takes one message, a list, or a string (one message), each counted as created', async () => {
    let context!: FilterContext;
    const r = await rig([
      (c) => {
        context = c;
        return { filter: (m) => m };
      },
      () => ({ filter: (m) => (typeof m === 'string' ? { text: m, after: true } : { ...(m as object), after: true }) }),
    ]);
    await runWith(r, async (input) => {
      await input.emit(batch(['{"n":1}']));
      context.push({ one: 1 });
      context.push([{ two: 1 }, { two: 2 }]);
      context.push('a string');
      await settle();
      await input.emit(batch(['{"n":2}'], undefined, 2));
    });
    expect(r.output.delivered).toEqual([
      '{"n":1,"after":true}',
      '{"one":1,"after":true}',
      '{"two":1,"after":true}',
      '{"two":2,"after":true}',
      '{"text":"a string","after":true}',
      '{"n":2,"after":true}',
    ]);
    expect(r.chain.counters).toMatchObject({ in: 2, created: 4, out: 6, dropped: 0, errors: 0 });
  });

  it('in + created = out + dropped + errors with lists, empty lists, flush, push, timers and errors', async () => {
    let context!: FilterContext;
    const r = await rig([
      (c) => {
        context = c;
        let held: Message[] = [];
        return {
          filter(m): FilterResult {
            const n = (m as { n: number }).n;
            if (n % 5 === 0) return [m, { copy: n }, { copy: n }];
            if (n % 5 === 1) return [];
            if (n % 5 === 2) {
              held.push(m);
              return undefined;
            }
            if (n % 5 === 3) c.schedule(5, () => [{ timer: n }, { timer: n }]);
            if (n === 9) throw new Error('nine');
            return m;
          },
          flush() {
            const out = held;
            held = [];
            return out;
          },
        };
      },
      () => ({ filter: (m) => ((m as { copy?: number }).copy === 10 ? { big: 10n } : m) }),
    ]);
    await runWith(r, async (input) => {
      const frames = Array.from({ length: 12 }, (_, i) => (i === 6 ? 'bad' : JSON.stringify({ n: i })));
      await input.emit(batch(frames.slice(0, 6)));
      context.push([{ pushed: 1 }, { pushed: 2 }]);
      r.clock.advance(5);
      await input.emit(batch(frames.slice(6), undefined, 7));
      r.clock.advance(5);
      await settle();
    });
    const c = r.chain.counters;
    identityHolds(c);
    expect(c.in).toBe(12);
    // 'bad' does not decode, 9 throws, the two copies of 10 cannot be encoded.
    expect(c.errors).toBe(4);
    // Two copies each of 0, 5 and 10; the push of 2; two timers of 2; the flush of 2 and 7.
    expect(c.created).toBe(6 + 2 + 4 + 2);
    // 1 and 11 (empty lists), 2 and 7 (held).
    expect(c.dropped).toBe(4);
    expect(c.out).toBe(18);
    expect(r.output.delivered.length).toBe(c.out);
  });
});

describe('Chain decoding', () => {
  it('checks Buffers given to a text decoder as UTF-8: an error record otherwise, numbered', async () => {
    const r = await rig();
    await r.input.emit({ frames: [Buffer.from('{"é":1}'), Buffer.from([0x7b, 0xff, 0x7d]), Buffer.alloc(0), Buffer.from('"€"')], source: 'file:x', first: 10 });
    await settle();
    expect(r.output.delivered).toEqual(['{"é":1}', '"€"']);
    expect(r.errors.delivered.map((l) => JSON.parse(l) as unknown)).toEqual([
      { error: 'encoding', reason: 'frame is not valid UTF-8', source: 'file:x:11', frame: Buffer.from([0x7b, 0xff, 0x7d]).toString('base64'), encoding: 'base64' },
    ]);
    expect(r.chain.counters).toMatchObject({ in: 3, out: 2, errors: 1 });
  });

  it('annotates each decoded object with its frame number', async () => {
    const r = await rig();
    await r.input.emit({
      frames: ['{"a":1}', '[1]', '{"a":2}'],
      source: 's',
      first: 5,
      annotate: (m, n) => {
        m.line = n;
      },
    });
    expect(r.output.delivered).toEqual(['{"a":1,"line":5}', '[1]', '{"a":2,"line":7}']);
  });

  it('a sink asks the input for an acknowledgement per batch with the offset after its last frame', async () => {
    const r = await rig([tag('t')]);
    const ends: number[] = [];
    let acked = 0;
    const sink = r.input.sink({
      source: 'file:y',
      acknowledge: (end) => {
        ends.push(end);
        return () => (acked = end);
      },
    });
    expect(sink.form).toBe('text');
    expect(sink.lines).toBeUndefined();
    await sink.frames(['{"a":1}', '{"a":2}'], 1, 16);
    sink.problem({ kind: 'over-long', reason: 'too long', number: 3, bytes: Buffer.from('xxxx') });
    await sink.frames(['', '{"a":4}'], 3, 40);
    await settle();
    expect(ends).toEqual([16, 40]);
    expect(acked).toBe(40);
    expect(r.errors.delivered.map((l) => (JSON.parse(l) as { source: string }).source)).toEqual(['file:y:3']);
    expect(r.chain.counters).toMatchObject({ in: 4, out: 3, errors: 1 });
  });
});

describe('Pass-through', () => {
  const output = (passThrough?: 'lines' | 'frames', writeLines = true) => {
    const o = new MemoryOutput({ passThrough });
    if (!writeLines) o.writeLines = undefined;
    return o;
  };

  it('planPassThrough: Null codecs pass every clean frame, the same verbatim codec passes its own form, nothing else passes', () => {
    expect(planPassThrough(raw, raw, 0, output('lines'))).toEqual({ to: 'lines' });
    expect(planPassThrough(raw, raw, 0, output('frames'))).toEqual({ to: 'frames' });
    expect(planPassThrough(json, json, 0, output('lines'))).toEqual({ to: 'lines', passes: json.verbatim });
    expect(planPassThrough(json, json, 0, output('frames'))).toEqual({ to: 'frames', passes: json.verbatim });
    expect(planPassThrough(json, raw, 0, output('lines'))).toBeUndefined();
    expect(planPassThrough(raw, json, 0, output('lines'))).toBeUndefined();
    expect(planPassThrough(raw, raw, 1, output('lines'))).toBeUndefined();
    expect(planPassThrough(json, json, 1, output('lines'))).toBeUndefined();
    expect(planPassThrough(raw, raw, 0, output(undefined))).toBeUndefined();
    expect(planPassThrough(raw, raw, 0, output('lines', false))).toBeUndefined();
  });

  it('framePasses: not empty, no LF towards lines, UTF-8 and verbatim for JSON', () => {
    const rawLines = { to: 'lines' } as const;
    const rawFrames = { to: 'frames' } as const;
    const jsonLines = { to: 'lines', passes: json.verbatim } as const;
    expect(framePasses(rawLines, Buffer.from('a'))).toBe(true);
    expect(framePasses(rawLines, Buffer.alloc(0))).toBe(false);
    expect(framePasses(rawLines, Buffer.from('a\nb'))).toBe(false);
    expect(framePasses(rawFrames, Buffer.from('a\nb'))).toBe(true);
    expect(framePasses(rawLines, Buffer.from([0xff]))).toBe(true);
    expect(framePasses(jsonLines, Buffer.from('{"a":1}'))).toBe(true);
    expect(framePasses(jsonLines, Buffer.from('{ "a": 1 }'))).toBe(false);
    expect(framePasses(jsonLines, Buffer.from([0x22, 0xff, 0x22]))).toBe(false);
  });

  it('frames as bytes: runs that pass go to writeLines, the others are decoded and encoded, in order, acknowledged once', async () => {
    const r = await rig([], { output: output('lines') });
    expect(r.chain.passThrough).toEqual({ to: 'lines', passes: json.verbatim });
    const a = ack(r);
    await r.input.emit(batch(['{"a":1}', '{"b":2}', '{ "c" : 3 }', 'oops', '{"d":4}'].map((s) => Buffer.from(s)), a.ack));
    await settle();
    expect(r.output.calls).toEqual(['lines 2', 'write 1', 'lines 1']);
    expect(r.output.delivered).toEqual(['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
    expect(r.errors.delivered).toHaveLength(1);
    expect(a.calls).toBe(1);
    expect(r.chain.counters).toMatchObject({ in: 5, out: 4, errors: 1 });
  });

  it("frames as bytes to an output that takes frames: each frame's own bytes", async () => {
    const r = await rig([], { output: output('frames'), decoder: raw, encoder: raw });
    await r.input.emit(batch([Buffer.from('one'), Buffer.from('two\nlines'), Buffer.from([0xff])]));
    expect(r.output.calls).toEqual(['write 3']);
    expect(r.output.delivered).toEqual(['bytes:one', 'bytes:two\nlines', `bytes:${Buffer.from([0xff]).toString('utf8')}`]);
  });

  it('a sink offers lines to a line framer when frames pass; annotating turns it off', async () => {
    const r = await rig([], { output: output('lines') });
    let acked = 0;
    const sink = r.input.sink({ source: 'f', acknowledge: (end) => () => (acked = end) });
    expect(sink.form).toBe('text');
    expect(sink.passes).toBe(json.verbatim);
    await sink.lines!(Buffer.from('{"a":1}\n{"a":2}\n'), 2, 16);
    expect(r.output.delivered).toEqual(['{"a":1}', '{"a":2}']);
    expect(acked).toBe(16);
    const annotated = r.input.sink({ source: 'f', annotate: () => undefined });
    expect(annotated.lines).toBeUndefined();
    // Null codecs towards frames: lines are split into frames.
    const toFrames = await rig([], { output: output('frames'), decoder: raw, encoder: raw });
    await toFrames.input.sink({ source: 'g' }).lines!(Buffer.from('x\ny\n'), 2, 4);
    expect(toFrames.output.calls).toEqual(['write 2']);
    expect(toFrames.output.delivered).toEqual(['x', 'y']);
    expect(toFrames.chain.counters).toMatchObject({ in: 2, out: 2 });
  });

  it('no pass-through with a filter: every frame is decoded', async () => {
    const r = await rig([tag('t')], { output: output('lines') });
    expect(r.chain.passThrough).toBeUndefined();
    await r.input.emit(batch([Buffer.from('{"a":1}')]));
    expect(r.output.calls).toEqual(['write 1']);
  });
});
