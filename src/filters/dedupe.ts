import { DueQueue, EventClock, fieldsOf, isoTime, readEventTime } from '../core/event-clock.js';
import { keyPart } from '../core/match.js';
import { defineFilter, type Message } from '../core/plugin.js';
import type { KeyedState } from '../core/state.js';
import { fieldValue } from '../core/time.js';

/** Fields that differ between repeats of one event: times Python's logging and most shippers add. */
const TIME_FIELDS = ['created', 'msecs', 'relativeCreated', 'asctime', 'time', 'timestamp', '@timestamp'];

/** The occurrences of one event within one window. */
interface Group {
  key: string;
  /** The window's end: the group closes once the watermark reaches it. */
  at: number;
  /** The message the record is made of: the first occurrence, or with emit "first" the first repeat. */
  base: Message;
  /** Events the record stands for (with emit "first", the repeats after the first occurrence). */
  count: number;
  first: number;
  last: number;
}

export default defineFilter({
  summary: 'Collapse repeats of an event within a time window into one message with their count.',
  description:
    'Messages with the same key (by default every field but the time fields in ignore and the three fields below) within one window become one message: the first one, with count_field (repeats), first_field and last_field (ISO 8601 times) added. ' +
    'With emit "end" it goes on when its window closes, records in the order their events first occurred; with emit "first" the first occurrence goes on at once (with repeats 1) and, if the event repeated, one more message with the count of the repeats follows when the window closes, so an event that never stops is still reported once per window. ' +
    'The repeats of all messages emitted add up to the number of messages read; in --stats the messages folded into a record count as dropped. A message that already carries count_field, first_field and last_field (the output of another Dedupe, or Threshold\'s alert times) counts as that many events over that span. ' +
    'A message that is not an object (a line read with --decoder Null) is read as {message: line} and goes on wrapped, as {message, repeats, first_time, last_time}. ' +
    'Windows are tumbling (at whole multiples of window: "the same second") or sliding (from an event\'s first occurrence). With time_field, time is the event\'s: a window closes once an event later than its end by lateness arrives, or once the stream has been quiet for a second more than the window had left; without it, time is arrival time. ' +
    'Memory: one message per distinct key in the open windows, at most max_keys; past it the oldest group is emitted early, marked with cut: "max_keys". Everything held is emitted at the end of input and on SIGINT/SIGTERM; acknowledgements (File checkpoints) of the messages held wait until then.',
  examples: [
    'message-passing --filter Dedupe',
    `message-passing --filter Dedupe --filter_options '{key: ["host", "message"], window: "10s", emit: "first"}'`,
    `message-passing --filter Dedupe --filter_options '{time_field: "@timestamp", lateness: "2s", align: "sliding"}'`,
  ],
  options: {
    key: { type: 'strings', description: 'Fields (dotted paths) that identify an event; by default every field except those in ignore, count_field, first_field and last_field.', example: '["host", "message"]' },
    ignore: { type: 'strings', default: TIME_FIELDS, description: 'Fields left out of the default key (times that differ between repeats); not used when key is given.' },
    window: { type: 'duration', default: '1s', min: 1, description: 'How long repeats are collapsed for.' },
    align: {
      type: 'string',
      choices: ['tumbling', 'sliding'],
      default: 'tumbling',
      description: 'tumbling: windows start at whole multiples of window (epoch-aligned); sliding: a window starts at the event\'s first occurrence.',
    },
    emit: {
      type: 'string',
      choices: ['end', 'first'],
      default: 'end',
      description: 'end: one message per event when its window closes; first: the first occurrence at once, then one message with the count of its repeats, if any, when the window closes.',
    },
    count_field: { type: 'string', default: 'repeats', description: 'Field that receives how many events the message stands for.' },
    first_field: { type: 'string', default: 'first_time', description: 'Field that receives the time of the first of them (ISO 8601).' },
    last_field: { type: 'string', default: 'last_time', description: 'Field that receives the time of the last of them (ISO 8601).' },
    time_field: { type: 'string', description: 'Field holding the event time (ISO 8601, epoch seconds or milliseconds); arrival time without it.', example: '"@timestamp"' },
    lateness: { type: 'duration', default: '0s', description: 'How long after a window\'s end (in event time) its events may still arrive out of order and count in it.' },
    max_keys: { type: 'integer', min: 1, default: 100_000, description: 'Most distinct events held at once; past it the oldest is emitted early, marked cut: "max_keys".' },
  },
  check(options) {
    const names = [options.count_field, options.first_field, options.last_field];
    if (new Set(names).size < names.length) return `count_field, first_field and last_field must differ (got ${names.join(', ')})`;
    return undefined;
  },
  create(options, context) {
    const { window, emit, max_keys: maxKeys, count_field: countField, first_field: firstField, last_field: lastField } = options;
    const sliding = options.align === 'sliding';
    const emitFirst = emit === 'first';
    const keyOf = keyFunction(options.key, [...options.ignore, countField, firstField, lastField]);

    // A copy: the message may be referenced elsewhere still (a Threshold alert's samples).
    // Object.assign, as spreading then adding fields cost 6 µs a record on Node 20 (measured).
    const record = (base: Message, count: number, first: number, last: number): Message => {
      const copy: Record<string, unknown> =
        typeof base === 'object' && base !== null && !Array.isArray(base) ? Object.assign({}, base as Record<string, unknown>) : { message: base };
      copy[countField] = count;
      const firstTime = isoTime(first);
      copy[firstField] = firstTime;
      copy[lastField] = last === first ? firstTime : isoTime(last);
      return copy;
    };

    /** The record of a group that leaves (or nothing, when only its first occurrence was seen and it already went on). */
    const closed = (group: Group): Message | undefined => {
      const message = group.count > 0 ? record(group.base, group.count, group.first, group.last) : undefined;
      // The due queue may keep the group a while (evicted, closed early): not its message.
      group.base = undefined;
      return message;
    };

    /** A group emitted before its window ends, to stay within max_keys. */
    const cutShort = (group: Group): Message | undefined => {
      const message = closed(group);
      if (message !== undefined) (message as Record<string, unknown>).cut = 'max_keys';
      return message;
    };
    const state: KeyedState<Group> = context.keyed<Group>({ maxKeys, evict: (_key, group) => cutShort(group) });
    const queue = new DueQueue<Group>();

    /** Closes every group whose window the watermark has passed, oldest window first, then first occurrence. */
    const closeDue = (limit: number, out: Message[] | undefined): Message[] | undefined => {
      while (queue.size > 0 && queue.nextAt() <= limit) {
        const group = queue.pop()!;
        // A group evicted, or closed early by a later repeat, has left the state already.
        if (state.get(group.key) !== group) continue;
        state.take(group.key);
        const message = closed(group);
        if (message !== undefined) (out ??= []).push(message);
      }
      if (queue.size > 2 * state.size + 1024) queue.retain((group) => state.get(group.key) === group);
      clock.wake(queue.nextAt());
      return out;
    };

    const clock = new EventClock(context, {
      timeField: options.time_field,
      lateness: options.lateness,
      onTimer: () => closeDue(clock.watermark, undefined),
    });

    // The window's part of the key, made once per window.
    let suffixStart = NaN;
    let suffix = '';

    return {
      filter(message) {
        const time = clock.observe(message);
        let out = closeDue(clock.watermark, undefined);
        let start: number;
        if (sliding) start = time;
        else {
          start = Math.floor(time / window) * window;
          // One group per event and window: with lateness, the previous window may still take events.
          if (start !== suffixStart) {
            suffixStart = start;
            suffix = `\u0002${start}`;
          }
        }
        const key = keyOf(message, suffix);
        let group = state.get(key);
        if (group !== undefined && time >= group.at) {
          // A sliding window is over once a repeat comes past its end.
          state.take(key);
          const message = closed(group);
          if (message !== undefined) (out ??= []).push(message);
          group = undefined;
        }
        // A record of an earlier Dedupe counts as its repeats, over its span of time.
        let count = 1;
        let first = time;
        let last = time;
        if (typeof message === 'object' && message !== null) {
          const fields = message as Record<string, unknown>;
          const given = fields[countField];
          if (typeof given === 'number' && Number.isSafeInteger(given) && given > 0) count = given;
          const from = fields[firstField] === undefined ? undefined : readEventTime(fields[firstField]);
          if (from !== undefined && from < first) first = from;
          const to = fields[lastField] === undefined ? undefined : readEventTime(fields[lastField]);
          if (to !== undefined && to > last) last = to;
        }
        if (group !== undefined) {
          if (emitFirst && group.count === 0) group.base = message;
          group.count += count;
          if (first < group.first) group.first = first;
          if (last > group.last) group.last = last;
          // Storing again holds this batch's acknowledgement until the record leaves (unacknowledged input: nothing to hold).
          if (context.currentHold() !== undefined) state.set(key, group);
          return out;
        }
        const end = start + window;
        if (end <= clock.watermark) {
          // Its window has closed already (a late event): it stands alone.
          (out ??= []).push(record(message, count, first, last));
          return out;
        }
        group = emitFirst
          ? { key, at: end, base: undefined, count: 0, first: Infinity, last: -Infinity }
          : { key, at: end, base: message, count, first, last };
        const evicted = state.set(key, group);
        queue.push(group);
        clock.wake(end);
        if (evicted.length > 0) (out ??= []).push(...evicted);
        if (emitFirst) (out ??= []).push(record(message, count, first, last));
        return out;
      },
      flush() {
        clock.stop();
        return closeDue(Infinity, undefined);
      },
    };
  },
});

/**
 * The key that tells events apart: the given fields' values, or every field but
 * the ignored ones; `suffix` (the window) ends it. Joined from a list: a key
 * built with += keeps its pieces as a tree (415 bytes a key of the benchmark's
 * events in a Map, 185 joined: measured).
 */
function keyFunction(fields: readonly string[] | undefined, ignore: readonly string[]): (message: Message, suffix: string) => string {
  const parts: string[] = [];
  if (fields !== undefined) {
    return (message, suffix) => {
      const view = fieldsOf(message);
      parts.length = 0;
      for (const field of fields) parts.push(keyPart(fieldValue(view, field)));
      parts.push(suffix);
      return parts.join('');
    };
  }
  const ignored = new Set(ignore);
  return (message, suffix) => {
    const view = fieldsOf(message) as Record<string, unknown> | undefined;
    if (view === undefined) return keyPart(message) + suffix;
    parts.length = 0;
    // Messages come from JSON: only own keys are enumerable.
    for (const name in view) {
      if (ignored.has(name)) continue;
      parts.push(keyPart(name), keyPart(view[name]));
    }
    parts.push(suffix);
    return parts.join('');
  };
}
