import { DueQueue, EventClock, fieldsOf, isoTime, stateWithoutHolds } from '../core/event-clock.js';
import { compileMatch, keyPart, MatchSpecError, type Matcher } from '../core/match.js';
import { closest, typeName } from '../core/options.js';
import { defineFilter, one, type Message } from '../core/plugin.js';
import type { KeyedState } from '../core/state.js';
import { fieldValue, parseDuration, ValueFormatError } from '../core/time.js';

const DEFAULT_HOLD = '10m';
/** Past this many separate runs of one source, the oldest is forgotten (runs only part when a source stops for longer than hold). */
const MAX_RUNS = 8;

interface Rule {
  /** What inhibited_by.rule says: the rule's name, or its position in rules. */
  label: string | number;
  source: Matcher;
  targets: Matcher[];
  equal: string[];
  hold: number;
}

/** Sources seen close enough together that their hold periods join: they cover [first - wait, last + hold]. */
interface Run {
  first: number;
  last: number;
}

/** The sources of one rule with one set of equal values. */
interface Sources {
  key: string;
  /** When to look again whether every run has expired. */
  at: number;
  /** Runs of every source. */
  all: Run[];
  /** Runs of sources that do not match the rule's targets: the only ones that inhibit a message matching both sides. */
  pure: Run[];
}

/** A target message waiting for `wait` before it is checked. */
interface Waiting {
  key: string;
  at: number;
  time: number;
  message: Message;
  fields: object | undefined;
  /** Rules it is a target of, and whether it is also that rule's source. */
  targetOf: number[];
  sourceOf: number[];
}

const RULE_KEYS = ['name', 'source', 'targets', 'equal', 'hold'];

/** The rules option, checked; throws MatchSpecError saying which rule and key are wrong. */
function parseRules(raw: unknown): Rule[] {
  const shape = 'a list of {source: {field: value, …}, targets: [{field: value, …}, …], equal: [field, …], hold: "10m"}';
  if (!Array.isArray(raw) || raw.length === 0) throw new MatchSpecError(`rules must be ${shape}, got ${typeName(raw)}`);
  return raw.map((rule: unknown, index): Rule => {
    const where = `rules[${index}]`;
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new MatchSpecError(`${where} must be an object {source, targets, equal, hold}, got ${typeName(rule)}`);
    const given = rule as Record<string, unknown>;
    for (const key of Object.keys(given)) {
      if (RULE_KEYS.includes(key)) continue;
      const hint = closest(key, RULE_KEYS);
      throw new MatchSpecError(`${where}: unknown key '${key}'${hint ? ` (did you mean '${hint}'?)` : ` (known: ${RULE_KEYS.join(', ')})`}`);
    }
    if (given.source === undefined) throw new MatchSpecError(`${where}.source is required: the fields of the root-cause message`);
    if (given.targets === undefined) throw new MatchSpecError(`${where}.targets is required: a list of the fields of the messages it suppresses`);
    const targetList = Array.isArray(given.targets) ? given.targets : [given.targets];
    if (targetList.length === 0) throw new MatchSpecError(`${where}.targets is an empty list: the rule would suppress nothing`);
    const equalList = given.equal === undefined ? [] : typeof given.equal === 'string' ? [given.equal] : given.equal;
    if (!Array.isArray(equalList) || !equalList.every((field) => typeof field === 'string' && field !== '')) {
      throw new MatchSpecError(`${where}.equal must be a field name or a list of field names, got ${typeName(given.equal)}`);
    }
    if (given.name !== undefined && typeof given.name !== 'string') throw new MatchSpecError(`${where}.name must be a string, got ${typeName(given.name)}`);
    let hold: number;
    try {
      hold = parseDuration(given.hold ?? DEFAULT_HOLD);
    } catch (error) {
      if (!(error instanceof ValueFormatError)) throw error;
      throw new MatchSpecError(`${where}.hold must be ${error.expected}, got ${typeName(given.hold)}${error.hint ? ` (${error.hint})` : ''}`);
    }
    return {
      label: given.name ?? index,
      source: compileMatch(given.source, `${where}.source`),
      targets: targetList.map((target, t) => compileMatch(target, `${where}.targets[${t}]`)),
      equal: equalList as string[],
      hold,
    };
  });
}

export default defineFilter({
  summary: 'Suppress the messages a root cause brings about, once the root cause is seen (inhibit rules).',
  description:
    'Each rule names a source (the root cause: an object of field → value, "/regex/" or a list of those, as Threshold\'s when) and targets (the effects). ' +
    'Once a message matching a rule\'s source is seen, messages matching any of its targets whose equal fields hold the same values as the source\'s are suppressed for hold after it: dropped (counted as dropped in --stats) or, with action "tag", passed on with inhibited_by: {rule, source_time}. ' +
    'wait holds each target message back that long before it is checked, so that a root cause arriving just after its effects still suppresses them (the targets then go on later than the messages around them). ' +
    'A message that matches both the source and the targets of a rule is not suppressed by itself, nor by other messages that match both. It works on alerts from Threshold (equal: ["key.host"]) as on plain log messages. ' +
    'With time_field, time is the event\'s (a waiting target goes on once an event later than it by wait plus lateness arrives, or once the stream has been quiet a second more than that); without it, arrival time. ' +
    'Memory: at most max_keys sources (rule and equal values; past it the oldest is forgotten early, and a warning says so once) and at most max_keys waiting targets (past it the oldest is checked and goes on at once). Waiting targets are emitted at the end of input and on SIGINT/SIGTERM, and hold back the acknowledgement (File checkpoints) of their batches until they are checked.',
  examples: [
    `message-passing --filter Inhibit --filter_options '{rules: [{source: {event: "db_down"}, targets: [{level: "error", service: "api"}], equal: ["host"], hold: "10m"}]}'`,
    `message-passing --filter Inhibit --filter_options '{rules: [{source: {alert: "link_down"}, targets: [{alert: "/_errors$/"}], equal: ["key.site"]}], wait: "30s", action: "tag"}'`,
  ],
  options: {
    rules: {
      type: 'any',
      required: true,
      description:
        'A list of {source: {field: value, …}, targets: [{field: value, …}, …], equal: [field, …], hold: duration (default "10m"), name: text}; values as in Threshold\'s when.',
      example: '[{source: {event: "db_down"}, targets: [{level: "error"}], equal: ["host"], hold: "10m"}]',
    },
    wait: { type: 'duration', default: '0s', description: 'How long each target message waits before it is checked, for root causes that arrive just after their effects.' },
    action: { type: 'string', choices: ['drop', 'tag'], default: 'drop', description: 'drop: suppressed messages are dropped; tag: they go on with inhibited_by: {rule, source_time}.' },
    time_field: { type: 'string', description: 'Field holding the event time (ISO 8601, epoch seconds or milliseconds); arrival time without it.', example: '"@timestamp"' },
    lateness: { type: 'duration', default: '0s', description: 'How far behind the latest event time a message may arrive out of order; waiting targets wait this much longer.' },
    max_keys: { type: 'integer', min: 1, default: 100_000, description: 'Most sources remembered, and most target messages waiting, at once.' },
  },
  check(options) {
    try {
      parseRules(options.rules);
    } catch (error) {
      if (error instanceof MatchSpecError) return error.message;
      throw error;
    }
    return undefined;
  },
  create(options, context) {
    const rules = parseRules(options.rules);
    const { wait, max_keys: maxKeys } = options;
    const tag = options.action === 'tag';
    let sequence = 0;
    let warned = false;

    const forget = (_key: string, entry: Sources): undefined => {
      // The due queue may keep the entry a while: not its runs.
      entry.all = [];
      entry.pure = [];
      if (!warned) {
        warned = true;
        context.warn(`Inhibit: more than max_keys (${maxKeys}) sources remembered at once: the oldest is forgotten before its hold ends; raise max_keys to keep more`);
      }
      return undefined;
    };
    // Sources went on: what is kept of them holds no acknowledgement back. Waiting targets do.
    const sources: KeyedState<Sources> = stateWithoutHolds({ maxKeys, evict: forget });
    const waiting: KeyedState<Waiting> = context.keyed<Waiting>({ maxKeys, evict: (_key, entry) => release(entry) });
    const sourceQueue = new DueQueue<Sources>();
    const waitQueue = new DueQueue<Waiting>();

    // Joined, not built with +=, which keeps a key's pieces as a tree (see Dedupe).
    const parts: string[] = [];
    const sourceKey = (rule: number, fields: object | undefined): string => {
      parts.length = 0;
      parts.push(`${rule}\u0001`);
      for (const field of rules[rule]!.equal) parts.push(keyPart(fieldValue(fields, field)));
      return parts.join('');
    };

    /** The message as it goes on, or undefined when a rule drops it. */
    const decide = (message: Message, fields: object | undefined, time: number, targetOf: number[], sourceOf: number[]): Message | undefined => {
      for (const r of targetOf) {
        const entry = sources.get(sourceKey(r, fields));
        if (entry === undefined) continue;
        const { hold } = rules[r]!;
        const runs = sourceOf.includes(r) ? entry.pure : entry.all;
        for (const run of runs) {
          if (time < run.first - wait || time > run.last + hold) continue;
          if (!tag) return undefined;
          const inhibitedBy = { rule: rules[r]!.label, source_time: isoTime(run.last <= time + wait ? run.last : run.first) };
          // A copy: the message may be referenced elsewhere still (a Threshold alert's samples).
          return typeof message === 'object' && message !== null && !Array.isArray(message)
            ? Object.assign({}, message, { inhibited_by: inhibitedBy })
            : { message, inhibited_by: inhibitedBy };
        }
      }
      return message;
    };

    /** A waiting target checked now: what goes on of it. The due queue may keep the entry a while: not its message. */
    const release = (entry: Waiting): Message | undefined => {
      const result = decide(entry.message, entry.fields, entry.time, entry.targetOf, entry.sourceOf);
      entry.message = undefined;
      entry.fields = undefined;
      return result;
    };

    /** Adds a source at `time` to `runs`: into the run whose coverage it joins, else as a run of its own. */
    const addSource = (runs: Run[], time: number, hold: number): void => {
      const reach = hold + wait;
      for (const run of runs) {
        if (time < run.first - reach || time > run.last + reach) continue;
        if (time < run.first) run.first = time;
        if (time > run.last) run.last = time;
        return;
      }
      runs.push({ first: time, last: time });
      if (runs.length > MAX_RUNS) {
        let oldest = 0;
        for (let i = 1; i < runs.length; i++) if (runs[i]!.last < runs[oldest]!.last) oldest = i;
        runs.splice(oldest, 1);
      }
    };

    /** When every run of `entry` has stopped mattering: targets still to be checked are later than the watermark less wait. */
    const expiresAt = (entry: Sources, hold: number): number => {
      let last = -Infinity;
      for (const run of entry.all) if (run.last > last) last = run.last;
      return last + hold + wait;
    };

    const advance = (limit: number, out: Message[] | undefined): Message[] | undefined => {
      while (waitQueue.size > 0 && waitQueue.nextAt() <= limit) {
        const entry = waitQueue.pop()!;
        if (waiting.get(entry.key) !== entry) continue;
        waiting.take(entry.key);
        const result = release(entry);
        if (result !== undefined) (out ??= []).push(result);
      }
      while (sourceQueue.size > 0 && sourceQueue.nextAt() <= limit) {
        const entry = sourceQueue.pop()!;
        if (sources.get(entry.key) !== entry) continue;
        const rule = rules[Number(entry.key.slice(0, entry.key.indexOf('\u0001')))]!;
        const at = expiresAt(entry, rule.hold);
        if (at <= limit) sources.take(entry.key);
        else {
          entry.at = at;
          sourceQueue.push(entry);
        }
      }
      if (waitQueue.size > 2 * waiting.size + 1024) waitQueue.retain((entry) => waiting.get(entry.key) === entry);
      if (sourceQueue.size > 2 * sources.size + 1024) sourceQueue.retain((entry) => sources.get(entry.key) === entry);
      clock.wake(Math.min(waitQueue.nextAt(), sourceQueue.nextAt()));
      return out;
    };

    const clock = new EventClock(context, {
      timeField: options.time_field,
      lateness: options.lateness,
      onTimer: () => advance(clock.watermark, undefined),
    });

    return {
      filter(message) {
        const time = clock.observe(message);
        let out = advance(clock.watermark, undefined);
        const fields = fieldsOf(message);
        let targetOf: number[] | undefined;
        let sourceOf: number[] | undefined;
        for (let r = 0; r < rules.length; r++) {
          const rule = rules[r]!;
          if (rule.source(fields)) (sourceOf ??= []).push(r);
          if (rule.targets.some((target) => target(fields))) (targetOf ??= []).push(r);
        }
        let result: Message | undefined = message;
        if (targetOf !== undefined) {
          if (wait > 0) {
            const key = `w${sequence++}`;
            const entry: Waiting = { key, at: time + wait, time, message, fields, targetOf, sourceOf: sourceOf ?? [] };
            const evicted = waiting.set(key, entry);
            waitQueue.push(entry);
            clock.wake(entry.at);
            if (evicted.length > 0) (out ??= []).push(...evicted);
            result = undefined;
          } else {
            result = decide(message, fields, time, targetOf, sourceOf ?? []);
          }
        }
        if (sourceOf !== undefined) {
          const horizon = clock.watermark - wait;
          for (const r of sourceOf) {
            const rule = rules[r]!;
            const key = sourceKey(r, fields);
            let entry = sources.get(key);
            const isNew = entry === undefined;
            entry ??= { key, at: 0, all: [], pure: [] };
            forgetEnded(entry.all, horizon - rule.hold);
            forgetEnded(entry.pure, horizon - rule.hold);
            addSource(entry.all, time, rule.hold);
            if (!targetOf?.includes(r)) addSource(entry.pure, time, rule.hold);
            sources.set(key, entry);
            if (isNew) {
              entry.at = expiresAt(entry, rule.hold);
              sourceQueue.push(entry);
              clock.wake(entry.at);
            }
          }
        }
        if (result !== undefined) {
          if (out === undefined) return one(result);
          out.push(result);
        }
        return out;
      },
      flush() {
        clock.stop();
        // The input has ended: every source there will be has been seen.
        const out = advance(Infinity, undefined);
        sources.takeAll();
        return out;
      },
    };
  },
});

/** Removes the runs whose last source is before `before`: their hold ended before any target still to be checked. */
function forgetEnded(runs: Run[], before: number): void {
  let kept = 0;
  for (const run of runs) if (run.last >= before) runs[kept++] = run;
  runs.length = kept;
}
