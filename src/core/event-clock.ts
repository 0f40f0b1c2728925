// Time for window filters (Dedupe, Threshold, Inhibit): when each message
// happened, how far the stream has got (the watermark), and a queue of things
// due once the watermark passes them.
//
// With a time field, time is the stream's own: the watermark is the latest event
// time seen minus `lateness`, so windows close as later events arrive, in the
// same way on a loaded machine as on an idle one. A live stream that goes quiet
// must still close its windows, so once no message came for a second, the
// watermark also moves on with the clock: a window due one second of event
// time ahead closes after two quiet seconds (timers look at least once a
// second). Without a time field, time is arrival time and the watermark is the
// clock less `lateness`.
import type { FilterContext, Message } from './plugin.js';
import { KeyedState, type HoldKeeper, type KeyedStateOptions } from './state.js';
import { eventTime, fieldValue } from './time.js';

/**
 * Entries in order of `at`, then of insertion: a binary heap, kept in two
 * arrays (items, and their insertion numbers) rather than a node object per entry.
 */
export class DueQueue<T extends { at: number }> {
  private items: T[] = [];
  private seqs: number[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
    this.seqs.push(this.seq++);
    this.up(this.items.length - 1);
  }

  /** The earliest `at`, or Infinity when empty. */
  nextAt(): number {
    return this.items.length ? this.items[0]!.at : Infinity;
  }

  pop(): T | undefined {
    const { items, seqs } = this;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const lastItem = items.pop()!;
    const lastSeq = seqs.pop()!;
    if (items.length > 0) {
      items[0] = lastItem;
      seqs[0] = lastSeq;
      this.down(0);
    }
    return top;
  }

  /** Keeps only the items `keep` accepts (entries that left otherwise, by eviction, would pile up). */
  retain(keep: (item: T) => boolean): void {
    const items: T[] = [];
    const seqs: number[] = [];
    for (let i = 0; i < this.items.length; i++) {
      if (!keep(this.items[i]!)) continue;
      items.push(this.items[i]!);
      seqs.push(this.seqs[i]!);
    }
    this.items = items;
    this.seqs = seqs;
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private before(i: number, j: number): boolean {
    const a = this.items[i]!.at;
    const b = this.items[j]!.at;
    return a < b || (a === b && this.seqs[i]! < this.seqs[j]!);
  }

  private swap(i: number, j: number): void {
    const { items, seqs } = this;
    const item = items[i]!;
    items[i] = items[j]!;
    items[j] = item;
    const seq = seqs[i]!;
    seqs[i] = seqs[j]!;
    seqs[j] = seq;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(child + 1, child)) child++;
      if (!this.before(child, i)) break;
      this.swap(i, child);
      i = child;
    }
  }
}

/**
 * A message's fields as window filters read them: an object as it is, and a
 * line read with the Null decoder (a string) as `{message: line}`.
 */
export function fieldsOf(message: Message): object | undefined {
  if (typeof message === 'string') return { message };
  return typeof message === 'object' && message !== null ? message : undefined;
}

/** Longest a timer waits before it looks again whether a quiet stream's windows are due. */
const TICK_MS = 1000;
/** In event time, a stream counts as quiet only once no message came for this long. */
const QUIET_GRACE_MS = 1000;

export interface EventClockOptions {
  /** Field holding the event time (ISO 8601, epoch seconds or ms); arrival time without it. */
  timeField: string | undefined;
  /** How far behind the latest event time an event may arrive and still count in its window, in ms. */
  lateness: number;
  /** Called from a timer once the watermark may have passed what was due: what it returns goes on. */
  onTimer(): Message[] | undefined;
}

/** Where a filter's windows stand in time; see the top of this file. */
export class EventClock {
  private latest = -Infinity;
  private lastArrival = -Infinity;
  private mark = -Infinity;
  private cancelTimer: (() => void) | undefined;

  constructor(
    private readonly context: FilterContext,
    private readonly options: EventClockOptions,
  ) {}

  /**
   * When `message` happened, in epoch ms; it moves the watermark on. A message
   * whose time field is missing or not a time (an alert made upstream, say)
   * counts as happening at the latest event time seen, or on arrival before
   * any, and does not move the watermark: arrival time mixed into an old log
   * would close every window at once.
   */
  observe(message: Message): number {
    const arrival = this.context.clock.now();
    this.lastArrival = arrival;
    let time = arrival;
    const { timeField } = this.options;
    if (timeField !== undefined) {
      const fields = fieldsOf(message);
      const read = fields === undefined ? undefined : readEventTime(fieldValue(fields, timeField));
      if (read === undefined) return this.latest > -Infinity ? this.latest : arrival;
      time = read;
    }
    if (time > this.latest) {
      this.latest = time;
      const mark = time - this.options.lateness;
      if (mark > this.mark) this.mark = mark;
    }
    return time;
  }

  /** Everything at or before this time is complete: later arrivals before it are late. */
  get watermark(): number {
    return this.mark;
  }

  /**
   * What a timer moves the watermark to: in arrival time, the clock; in event
   * time, the quiet time since the last arrival added, past a grace second (a
   * replay that pauses between reads is not a quiet stream).
   */
  private quietWatermark(): number {
    const now = this.context.clock.now();
    const { lateness, timeField } = this.options;
    if (timeField === undefined || this.latest === -Infinity) return Math.max(this.mark, now - lateness);
    const quiet = Math.max(0, now - this.lastArrival - QUIET_GRACE_MS);
    return Math.max(this.mark, this.latest - lateness + quiet);
  }

  /**
   * Makes sure a timer fires by the time a quiet stream's watermark reaches `at`.
   * A timer waits at most TICK_MS and then looks again: events that move the
   * watermark on meanwhile would make a longer one late, and setting timers
   * again as they arrive cost more than the filter itself over replayed logs.
   */
  wake(at: number): void {
    if (at === Infinity || this.cancelTimer !== undefined) return;
    const delay = Math.min(TICK_MS, Math.max(0, Math.ceil(at - this.quietWatermark())));
    this.cancelTimer = this.context.schedule(delay, () => {
      this.cancelTimer = undefined;
      this.mark = this.quietWatermark();
      return this.options.onTimer();
    });
  }

  /** Stops the pending timer (at the end: flush emits everything). */
  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }
}

/**
 * eventTime, with the form nearly every log and shipper writes
 * ("2026-11-22T10:00:00.123Z", or without the fraction) read from its
 * characters, without a regular expression and the strings its match makes: a
 * tenth of the window filters' time went there (measured). Any other value,
 * or a date this form cannot hold, is left to eventTime; both give the same
 * answer (tested).
 */
export function readEventTime(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const fast = canonicalTime(value);
    if (fast !== undefined) return fast;
  }
  return eventTime(value);
}

function canonicalTime(text: string): number | undefined {
  const n = text.length;
  if (n !== 24 && n !== 20) return undefined;
  if (text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 84 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) return undefined;
  if (text.charCodeAt(n - 1) !== 90 || (n === 24 && text.charCodeAt(19) !== 46)) return undefined;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  const ms = n === 24 ? digits(text, 20, 3) : 0;
  // Years below 100 (Date.UTC reads them as 19xx) and leap seconds are eventTime's to read.
  if (year < 100 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || ms < 0) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  if (day > days) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

/** The number written by `count` digits from `from`, or -1 when one is not a digit. */
function digits(text: string, from: number, count: number): number {
  let value = 0;
  for (let i = from; i < from + count; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** Years 0 to 9999, which toISOString writes in its short form. */
const SHORT_FORM_UNTIL = 253_402_300_800_000;
let minuteFormatted = NaN;
let minutePrefix = '';

/**
 * An event time as the records of window filters write it: toISOString's
 * text, with the part up to the minute kept from the previous call (records
 * of a window share it; toISOString was a tenth of Dedupe's time, measured).
 */
export function isoTime(ms: number): string {
  if (!(ms >= 0 && ms < SHORT_FORM_UNTIL)) return new Date(ms).toISOString();
  const minute = Math.floor(ms / 60_000);
  if (minute !== minuteFormatted) {
    minuteFormatted = minute;
    minutePrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
  }
  const rest = Math.floor(ms) - minute * 60_000;
  const seconds = Math.floor(rest / 1000);
  const millis = rest % 1000;
  return `${minutePrefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

const NO_HOLDS: HoldKeeper = { currentHold: () => undefined, hold: () => undefined, release: () => undefined };

/**
 * Keyed state for what holds no message (counts of messages that went on, root
 * causes seen): bounded by max_keys like the filter context's, but it keeps no
 * batch's acknowledgement back, so a File checkpoint is not held for a
 * realert or a hold of minutes.
 */
export function stateWithoutHolds<V>(options: KeyedStateOptions<V>): KeyedState<V> {
  return new KeyedState(options, NO_HOLDS);
}
