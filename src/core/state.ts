// Time and keyed state for filters that hold messages (multi-line assembly,
// windows, alerts): a clock that unit tests can drive by hand, and a map bounded
// by max_keys whose entries keep their batches' acknowledgements until they leave.
/** A message, as the chain carries it (see plugin.ts). */
type Message = unknown;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fire` once `ms` have passed; returns a function that cancels it. */
  after(ms: number, fire: () => void): () => void;
}

/** Real time. Timers do not keep the process alive: the input does, and the end flushes every filter. */
export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fire) {
    const timer = setTimeout(fire, Math.max(0, ms));
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/** A clock that moves only when told to: timers fire, in time order, as `advance` passes them. */
export class ManualClock implements Clock {
  private timers: Array<{ at: number; seq: number; fire: () => void }> = [];
  private seq = 0;

  constructor(private time = 0) {}

  now(): number {
    return this.time;
  }

  after(ms: number, fire: () => void): () => void {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fire };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time on by `ms`, firing every timer due on the way, each at its own time. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fire();
    }
    this.time = until;
  }
}

/**
 * A batch's acknowledgement, held by a message kept inside a filter: the batch
 * is acknowledged only once every hold on it is released.
 */
export interface Hold {
  readonly held: true;
}

/** What the chain lends a keyed state so that its entries hold acknowledgements. */
export interface HoldKeeper {
  currentHold(): Hold | undefined;
  hold(hold: Hold): void;
  /** Releases once what is being forwarded now has been delivered. */
  release(holds: readonly Hold[]): void;
}

export interface KeyedStateOptions<V> {
  /** At most this many keys; one more and the oldest key is evicted first. */
  maxKeys: number;
  /** What an evicted entry becomes: the messages to send on in its place (a flushed record). */
  evict(key: string, value: V): Message | readonly Message[] | undefined;
}

interface Entry<V> {
  value: V;
  holds: Hold[] | undefined;
  /** When it was created: tells a live key from an older entry of the same name in the age queue. */
  born: number;
}

const NOTHING: readonly Message[] = Object.freeze([]);

/**
 * Per-key state in order of creation (the oldest key first), bounded by
 * maxKeys: storing one key too many evicts the oldest, which its `evict`
 * turns into messages (flushed, never dropped). An entry holds the
 * acknowledgement of every batch that stored into it until it is taken.
 */
export class KeyedState<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /**
   * Keys in order of creation, with when each was created; taken keys leave
   * stale places, skipped and dropped as the head passes them. Iterating the
   * Map for its first key instead walks the holes V8 leaves where entries were
   * deleted (measured: 2.4 s of a 3 s run evicting at max_keys 10,000).
   */
  private ageKeys: string[] = [];
  private ageBorn: number[] = [];
  private ageHead = 0;
  private births = 0;

  constructor(
    private readonly options: KeyedStateOptions<V>,
    private readonly keeper: HoldKeeper,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  /**
   * Stores `value` under `key`, holding the current batch's acknowledgement.
   * Returns the messages of the entry evicted to make room (usually none).
   */
  set(key: string, value: V): readonly Message[] {
    let entry = this.entries.get(key);
    let evicted = NOTHING;
    if (entry) entry.value = value;
    else {
      if (this.entries.size >= this.options.maxKeys) evicted = this.evictOldest();
      entry = { value, holds: undefined, born: this.births++ };
      this.entries.set(key, entry);
      this.ageKeys.push(key);
      this.ageBorn.push(entry.born);
      this.compactAges();
    }
    const hold = this.keeper.currentHold();
    if (hold !== undefined) {
      if (!entry.holds) entry.holds = [hold];
      else if (entry.holds[entry.holds.length - 1] !== hold) entry.holds.push(hold);
      else return evicted;
      this.keeper.hold(hold);
    }
    return evicted;
  }

  /** Removes `key`, releasing its holds once what is forwarded now is delivered. */
  take(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.holds) this.keeper.release(entry.holds);
    return entry.value;
  }

  /** The oldest key, or undefined when empty. */
  oldestKey(): string | undefined {
    const { ageKeys, ageBorn } = this;
    while (this.ageHead < ageKeys.length) {
      const key = ageKeys[this.ageHead]!;
      if (this.entries.get(key)?.born === ageBorn[this.ageHead]) return key;
      this.ageHead++;
    }
    return undefined;
  }

  /**
   * Rebuilds the age queue from the live keys once stale places are more than
   * half of it (keys taken behind a long-lived oldest one): it stays within
   * twice what is held, at a cost spread over the insertions that grew it.
   */
  private compactAges(): void {
    if (this.ageKeys.length <= 2 * this.entries.size + 32) return;
    const keys: string[] = [];
    const born: number[] = [];
    for (let i = this.ageHead; i < this.ageKeys.length; i++) {
      const key = this.ageKeys[i]!;
      if (this.entries.get(key)?.born !== this.ageBorn[i]) continue;
      keys.push(key);
      born.push(this.ageBorn[i]!);
    }
    this.ageKeys = keys;
    this.ageBorn = born;
    this.ageHead = 0;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** Removes every entry, oldest first. */
  takeAll(): Array<[string, V]> {
    const all: Array<[string, V]> = [];
    for (const key of [...this.entries.keys()]) all.push([key, this.take(key)!]);
    return all;
  }

  private evictOldest(): readonly Message[] {
    const key = this.oldestKey()!;
    const result = this.options.evict(key, this.take(key)!);
    if (result === undefined) return NOTHING;
    return Array.isArray(result) ? (result as readonly Message[]) : [result];
  }
}
