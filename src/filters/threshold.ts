import { DueQueue, EventClock, fieldsOf, isoTime, stateWithoutHolds } from '../core/event-clock.js';
import { compileMatch, keyPart, MatchSpecError } from '../core/match.js';
import { defineFilter, one, type Message } from '../core/plugin.js';
import type { KeyedState } from '../core/state.js';
import { fieldValue, formatDuration } from '../core/time.js';

/** The recent matching messages of one key, oldest first (a queue kept in two arrays with a moving head). */
interface Counter {
  key: string;
  /** When to look again whether this counter can go: a quiet key's state is let go. */
  at: number;
  fields: Record<string, unknown>;
  times: number[];
  /** Beside times: the message, kept for at most `samples` of those in the window; undefined for the others. */
  messages: Array<Message | undefined>;
  /** How many messages are kept from head on. */
  kept: number;
  head: number;
  /** Time of the last alert, -Infinity before any. */
  alerted: number;
}

export default defineFilter({
  summary: 'Emit an alert when count matching messages of one key arrive within a time window.',
  description:
    'Messages that match when (all of its fields) are counted per key; as soon as count of them lie within a span of within (a sliding window; event time with time_field, else arrival time), an alert goes into the stream right after the message that reached the count: ' +
    '{alert, key: {FIELD: value}, count, first_time, last_time, within, samples: [the first messages of those counted]}. ' +
    'With time_field, the alert also carries the time the count was reached in that field, for filters after it in event time. ' +
    'The count then starts again from zero; the same key alerts again only once realert has passed since its last alert. The messages go on as well unless pass is false (then the matching ones are absorbed and count as dropped in --stats). ' +
    'Memory: per key, the times of up to count recent matching messages and up to samples of the messages; at most max_keys keys (past it the oldest key\'s count starts again, and a warning says so once). ' +
    'With pass false, a key\'s count holds back the acknowledgement (File checkpoints) of the messages it absorbed until it starts again or the key goes quiet; with pass true nothing is held back.',
  examples: [
    `message-passing --filter Threshold --filter_options '{when: {level: "error"}, key: ["host"], count: 5, within: "1m", alert: "error_burst"}'`,
    `message-passing --filter Threshold --filter_options '{when: {status: "/^5/"}, count: 100, within: "10s", time_field: "@timestamp", pass: false}'`,
  ],
  options: {
    when: {
      type: 'any',
      description: 'Which messages count: an object of field (dotted path) → value, "/regex/" or a list of those, all fields matching; values compare as text. By default every message.',
      example: '{level: "error", service: "/^api-/"}',
    },
    key: { type: 'strings', description: 'Fields the count is kept per (one count per distinct value); by default one count for all.', example: '["host"]' },
    count: { type: 'integer', min: 1, required: true, description: 'How many matching messages within the window make an alert.' },
    within: { type: 'duration', min: 1, required: true, description: 'The window: count messages whose times lie within this span alert.' },
    alert: { type: 'string', default: 'threshold', description: 'Name of the alert, in its alert field.' },
    pass: { type: 'boolean', default: true, description: 'Whether the matching messages go on as well (false: only alerts and messages that do not match go on).' },
    realert: { type: 'duration', default: '5m', description: 'After an alert, the same key alerts again only once this has passed.' },
    samples: { type: 'integer', min: 0, default: 3, description: 'How many messages the alert carries in samples: the first ones counted, as many as are kept (when the first ones leave the sliding window, later ones take their places as they come).' },
    time_field: { type: 'string', description: 'Field holding the event time (ISO 8601, epoch seconds or milliseconds); arrival time without it.', example: '"@timestamp"' },
    lateness: { type: 'duration', default: '0s', description: 'How far behind the latest event time a message may arrive and still be counted before its key\'s state is let go.' },
    max_keys: { type: 'integer', min: 1, default: 100_000, description: 'Most keys counted at once; past it the oldest key\'s count starts again.' },
  },
  check(options) {
    try {
      compileMatch(options.when, 'when');
    } catch (error) {
      if (error instanceof MatchSpecError) return error.message;
      throw error;
    }
    return undefined;
  },
  create(options, context) {
    const { count, within, realert, samples, max_keys: maxKeys } = options;
    const matches = compileMatch(options.when, 'when');
    const keyFields = options.key ?? [];
    const withinText = formatDuration(within);
    const timeField = options.time_field;
    const parts: string[] = [];
    let warned = false;

    // Counts hold no acknowledgement back: the messages counted went on. Absorbed
    // ones (pass false) wait for their alert: `absorbed` holds their batches until
    // the count starts again or the key goes quiet.
    const absorbed: KeyedState<true> | undefined = options.pass ? undefined : context.keyed<true>({ maxKeys, evict: () => undefined });
    const forget = (key: string, counter: Counter): undefined => {
      absorbed?.take(key);
      // The due queue may keep the counter a while: not its messages.
      counter.times = [];
      counter.messages = [];
      counter.head = 0;
      counter.kept = 0;
      if (!warned) {
        warned = true;
        context.warn(`Threshold ${options.alert}: more than max_keys (${maxKeys}) keys counted at once: the oldest key's count starts again; raise max_keys to keep more`);
      }
      return undefined;
    };
    const state = stateWithoutHolds<Counter>({ maxKeys, evict: forget });
    const queue = new DueQueue<Counter>();

    /** When to look at a counter again: when its count goes quiet (its newest time leaves the window), then when no realert is pending. */
    const checkAt = (counter: Counter): number =>
      counter.times.length > counter.head ? counter.times[counter.times.length - 1]! + within : counter.alerted + realert;

    const expire = (limit: number): void => {
      while (queue.size > 0 && queue.nextAt() <= limit) {
        const counter = queue.pop()!;
        if (state.get(counter.key) !== counter) continue;
        if (counter.times.length > counter.head && counter.times[counter.times.length - 1]! + within <= limit) {
          // Quiet: this count can no longer alert, and what it absorbed is done with.
          counter.times = [];
          counter.messages = [];
          counter.head = 0;
          counter.kept = 0;
          absorbed?.take(counter.key);
        }
        counter.at = checkAt(counter);
        if (counter.at <= limit) state.take(counter.key);
        else queue.push(counter);
      }
      if (queue.size > 2 * state.size + 1024) queue.retain((counter) => state.get(counter.key) === counter);
      clock.wake(queue.nextAt());
    };

    const clock = new EventClock(context, {
      timeField: options.time_field,
      lateness: options.lateness,
      onTimer: () => {
        expire(clock.watermark);
        return undefined;
      },
    });

    const alertFor = (counter: Counter, now: number): Message => {
      const { times, messages, head } = counter;
      let first = Infinity;
      let last = -Infinity;
      for (let i = head; i < times.length; i++) {
        if (times[i]! < first) first = times[i]!;
        if (times[i]! > last) last = times[i]!;
      }
      const alert: Record<string, unknown> = {
        alert: options.alert,
        key: Object.assign({}, counter.fields),
        count: times.length - head,
        first_time: isoTime(first),
        last_time: isoTime(last),
        within: withinText,
        samples: samplesOf(messages, head),
      };
      // Filters after this one that read the same time field place the alert in event time.
      if (timeField !== undefined) alert[timeField] = isoTime(now);
      return alert;
    };

    /** The messages kept for samples from `head` on, at most `samples`. */
    const samplesOf = (messages: Array<Message | undefined>, head: number): Message[] => {
      const found: Message[] = [];
      for (let i = head; i < messages.length && found.length < samples; i++) if (messages[i] !== undefined) found.push(messages[i]);
      return found;
    };

    return {
      filter(message) {
        const time = clock.observe(message);
        expire(clock.watermark);
        const fields = fieldsOf(message);
        if (!matches(fields)) return one(message);
        // Joined, not built with +=, which keeps a key's pieces as a tree (see Dedupe).
        parts.length = 0;
        for (const field of keyFields) parts.push(keyPart(fieldValue(fields, field)));
        const key = parts.join('');
        let counter = state.get(key);
        if (counter === undefined) {
          const keyValues: Record<string, unknown> = {};
          for (const field of keyFields) keyValues[field] = fieldValue(fields, field) ?? null;
          counter = { key, at: 0, fields: keyValues, times: [], messages: [], head: 0, kept: 0, alerted: -Infinity };
          counter.at = time + within;
          state.set(key, counter);
          queue.push(counter);
          clock.wake(counter.at);
        }
        const { times, messages } = counter;
        // Times that have left the window behind the newest one (events out of order stay until they reach the head).
        const newest = Math.max(time, times.length > counter.head ? times[times.length - 1]! : -Infinity);
        while (counter.head < times.length && times[counter.head]! <= newest - within) {
          if (messages[counter.head] !== undefined) counter.kept--;
          counter.head++;
        }
        if (time > newest - within) {
          times.push(time);
          // Only as many messages as samples are kept: the first ones while there is room.
          if (samples > 0) {
            const keep = counter.kept < samples;
            messages.push(keep ? message : undefined);
            if (keep) counter.kept++;
          }
        }
        let alert: Message | undefined;
        if (times.length - counter.head >= count) {
          if (time - counter.alerted >= realert) {
            alert = alertFor(counter, time);
            counter.alerted = time;
          }
          // Counting starts again, alert or not: what was absorbed into this count is done with.
          counter.times = [];
          counter.messages = [];
          counter.head = 0;
          counter.kept = 0;
          absorbed?.take(key);
        } else {
          if (counter.head > 64 && counter.head * 2 > times.length) {
            counter.times = times.slice(counter.head);
            counter.messages = messages.slice(counter.head);
            counter.head = 0;
          }
          absorbed?.set(key, true);
        }
        if (alert === undefined) return options.pass ? one(message) : undefined;
        return options.pass ? [message, alert] : alert;
      },
      flush() {
        clock.stop();
        // Counts below the threshold make no alert: what they absorbed is done with.
        state.takeAll();
        absorbed?.takeAll();
        return undefined;
      },
    };
  },
});
