import { UsageError } from '../core/errors.js';
import type { OptionsOf } from '../core/options.js';
import { defineFilter, one, type FilterContext, type FilterResult, type Message } from '../core/plugin.js';
import type { KeyedState } from '../core/state.js';
import { fieldValue } from '../core/time.js';
import { isRecord, put, setField } from '../common/fields.js';

/**
 * Decides which lines belong together. States are small numbers a preset
 * gives meaning to (0: a record's first line); a line either continues the
 * open record of its key, moving it to a new state, or begins a record.
 */
export interface Joiner {
  /** The state of a record that `line` begins. */
  begin(line: string): number;
  /** The state after `line` when it continues a record in `state`; -1 when it begins a new record. */
  next(state: number, line: string): number;
}

type Test = RegExp | ((line: string) => boolean);
type Rule = readonly [Test, number];

const BLANK = /^\s*$/;
const INDENTED = /^\s/;

/** A joiner from rules: `initial` places a record's first line, `states[s]` lists what may follow a line in state s. */
function ruleJoiner(initial: readonly Rule[], states: ReadonlyArray<readonly Rule[]>): Joiner {
  const pass = (rules: readonly Rule[], line: string, otherwise: number) => {
    for (const [test, to] of rules) if (typeof test === 'function' ? test(line) : test.test(line)) return to;
    return otherwise;
  };
  return { begin: (line) => pass(initial, line, 0), next: (state, line) => pass(states[state]!, line, -1) };
}

const PY_TRACEBACK = /^(?:Traceback|Stack) \(most recent call last\):/;
const PY_GROUP = /^\s*\+ Exception Group Traceback \(most recent call last\):/;
/** The last line of a traceback: an exception's qualified name, then ': ' and its text, or nothing. */
const PY_EXCEPTION = /^[A-Za-z_][\w.<>]*(?:: |:?$)/;
const PY_CHAINED = /^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)/;

const JAVA_EXCEPTION = /^(?:[A-Za-z_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable)\b/;
const JAVA_FRAME = /^\s+at /;
const JAVA_CAUSE = /^Caused by: /;

const GO_GOROUTINE = /^goroutine \d+ \[/;
/** A Go stack's function line, `pkg.(*T).Name(args)`: tested without a regular expression that could backtrack. */
const goFunction = (line: string) => /^[^\s(]+\(/.test(line) && line.endsWith(')');

const RUBY_FRAME = /^\s+from \S/;
const RUBY_LOCATION = /^\S+?:\d+:in /;
const RUBY_CLASS_AT_END = /\([A-Z][\w:]*\)$/;
/** What Ruby prints first for an uncaught exception, `file.rb:N:in 'method': text (Class)`: two tests, neither can backtrack. */
const rubyHeader = (line: string) => RUBY_LOCATION.test(line) && RUBY_CLASS_AT_END.test(line);

/** Built-in joiners for the stack traces of common runtimes. */
export const PRESETS = {
  // 0 log line, 1 traceback frames, 2 after the exception line, 3 between chained tracebacks.
  python: ruleJoiner(
    [[PY_TRACEBACK, 1], [PY_GROUP, 1]],
    [
      [[PY_TRACEBACK, 1], [PY_GROUP, 1]],
      [[INDENTED, 1], [BLANK, 1], [PY_EXCEPTION, 2]],
      [[PY_CHAINED, 3], [BLANK, 2]],
      [[PY_TRACEBACK, 1], [PY_GROUP, 1], [BLANK, 3]],
    ],
  ),
  // 0 log line (or "Exception in thread ..."), 1 inside the trace.
  java: ruleJoiner(
    [[JAVA_EXCEPTION, 1]],
    [
      [[JAVA_EXCEPTION, 1], [JAVA_FRAME, 1], [JAVA_CAUSE, 1]],
      [[INDENTED, 1], [JAVA_CAUSE, 1], [BLANK, 1]],
    ],
  ),
  // 0 log line, 1 after "panic:" or "fatal error:", 2 inside goroutine stacks.
  go: ruleJoiner(
    [[/^(?:panic: |fatal error: )/, 1], [GO_GOROUTINE, 2]],
    [
      [[GO_GOROUTINE, 2]],
      [[BLANK, 1], [INDENTED, 1], [/^\[signal /, 1], [/^panic: /, 1], [GO_GOROUTINE, 2]],
      [[BLANK, 2], [INDENTED, 2], [GO_GOROUTINE, 2], [/^created by /, 2], [goFunction, 2], [/^\.\.\.additional frames elided\.\.\.$/, 2], [/^exit status \d+$/, 2]],
    ],
  ),
  // 0 log line, 1 Logger's backtrace (unindented `file.rb:N:in ...` lines), 2 an uncaught exception's "\tfrom ..." lines and its causes' headers.
  ruby: ruleJoiner(
    [[rubyHeader, 2]],
    [
      [[rubyHeader, -1], [RUBY_FRAME, 2], [RUBY_LOCATION, 1], [INDENTED, 1]],
      [[rubyHeader, -1], [RUBY_FRAME, 2], [RUBY_LOCATION, 1], [INDENTED, 1], [BLANK, 1]],
      [[RUBY_FRAME, 2], [RUBY_LOCATION, 2], [INDENTED, 2], [BLANK, 2]],
    ],
  ),
} as const satisfies Record<string, Joiner>;

export type PresetName = keyof typeof PRESETS;

/** A joiner from one regular expression: `start` begins a record, or `continue` continues one; `negate` turns the test around. */
export function regexJoiner(kind: 'start' | 'continue', regex: RegExp, negate: boolean): Joiner {
  if (kind === 'start') return { begin: () => 0, next: (_, line) => (regex.test(line) !== negate ? -1 : 0) };
  return { begin: () => 0, next: (_, line) => (regex.test(line) !== negate ? 0 : -1) };
}

const options = {
  start: {
    type: 'string',
    description: 'A regular expression: a line that matches it begins a record; any other line continues the open record of its key.',
    example: '^\\\\d{4}-\\\\d{2}-\\\\d{2} ',
  },
  continue: {
    type: 'string',
    description: 'Instead of start: a regular expression for continuation lines; any other line begins a record.',
    example: '^\\\\s',
  },
  preset: {
    type: 'string',
    choices: ['python', 'java', 'go', 'ruby'],
    description: 'Instead of start or continue: the stack traces of a runtime (see the description).',
  },
  negate: {
    type: 'boolean',
    default: false,
    description: 'Turn the test of start or continue around (a line that does NOT match begins, or continues).',
  },
  field: {
    type: 'string',
    default: 'message',
    description: 'The field that holds the line (a dotted path); with --decoder Null the message is the line itself.',
  },
  key: {
    type: 'strings',
    description: 'Field path(s) whose values keep records apart, e.g. "origin.file" or ["host", "thread"]: records of different keys never mix.',
  },
  idle: {
    type: 'duration',
    default: '2s',
    description: 'Emit a record once no line came for its key for this long.',
  },
  max_age: {
    type: 'duration',
    default: '30s',
    description: 'Emit a record once this long has passed since its first line, however steady its lines come.',
  },
  max_lines: {
    type: 'integer',
    min: 1,
    default: 1000,
    description: 'Most lines in one record; at the bound the record is emitted with "truncated": true and the rest begins a new one.',
  },
  max_bytes: {
    type: 'size',
    min: 1,
    default: '1MiB',
    description: 'Most bytes of text in one record (UTF-8, separators included); cut as at max_lines. A longer single line is kept whole.',
  },
  max_keys: {
    type: 'integer',
    min: 1,
    default: 10000,
    description: 'Most records held at once (one per key); one more and the oldest is emitted.',
  },
  separator: {
    type: 'string',
    default: '\n',
    description: 'Put between the lines of a record.',
  },
} as const;

type MultilineOptions = OptionsOf<typeof options>;

function compile(o: MultilineOptions, which: 'start' | 'continue'): RegExp {
  try {
    return new RegExp(o[which]!);
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(error);
    throw new UsageError(`option '${which}' ${JSON.stringify(o[which])} is not a valid regular expression: ${reason}`);
  }
}

function joinerOf(o: MultilineOptions): Joiner {
  if (o.preset !== undefined) return PRESETS[o.preset];
  const which = o.start !== undefined ? 'start' : 'continue';
  return regexJoiner(which, compile(o, which), o.negate);
}

/** A record being assembled: the first line's message, and the text of every line so far. */
interface Held {
  key: string;
  first: Message;
  text: string;
  lines: number;
  bytes: number;
  state: number;
  /** Clock times of the first and the latest line. */
  firstAt: number;
  lastAt: number;
}

const TRAILING_BREAK = /\r?\n$/;
const NONE: readonly Message[] = [];

class Assembler {
  private readonly joiner: Joiner;
  private readonly held: KeyedState<Held>;
  /** The same records, least recently extended first: the next to fall idle is at the front. */
  private readonly byActivity = new Map<string, Held>();
  /**
   * The same records oldest first, and records already gone (skipped when met):
   * V8's Map keeps deleted entries as holes until it rehashes, so finding the
   * oldest key of a Map that loses keys at the front costs up to its size each
   * time (measured: evicting at max_keys 10,000 spent 2.4 s of 3 s there).
   */
  private byAge: Array<Held | undefined> = [];
  private byAgeHead = 0;
  private readonly separatorBytes: number;
  private timerAt = Infinity;
  private cancelTimer: (() => void) | undefined;
  private timerToken = 0;

  constructor(
    private readonly o: MultilineOptions,
    private readonly context: FilterContext,
  ) {
    this.joiner = joinerOf(o);
    this.separatorBytes = Buffer.byteLength(o.separator);
    this.held = context.keyed<Held>({
      maxKeys: o.max_keys,
      evict: (key, record) => {
        this.byActivity.delete(key);
        return this.finish(record, false);
      },
    });
  }

  filter(message: Message): FilterResult {
    const text = typeof message === 'string' ? message : fieldValue(message, this.o.field);
    const key = this.keyOf(message);
    const open = this.held.get(key);
    if (typeof text !== 'string') {
      // Not a line: it ends the open record of its key and goes on right after it.
      return open ? [this.end(key, open, false), message] : one(message);
    }
    // Container logs (Docker's "log" field) keep each line's LF: the rules look at the line without it.
    const line = text.endsWith('\n') ? text.replace(TRAILING_BREAK, '') : text;
    const now = this.context.clock.now();
    if (open === undefined) {
      const evicted = this.begin(key, message, text, this.joiner.begin(line), now);
      return evicted.length > 0 ? evicted : undefined;
    }
    const state = this.joiner.next(open.state, line);
    if (state < 0) return this.replace(key, open, false, message, text, this.joiner.begin(line), now);
    const bytes = Buffer.byteLength(text);
    if (open.lines >= this.o.max_lines || open.bytes + this.separatorBytes + bytes > this.o.max_bytes) {
      return this.replace(key, open, true, message, text, state, now);
    }
    open.text += this.o.separator + text;
    open.lines++;
    open.bytes += this.separatorBytes + bytes;
    open.state = state;
    open.lastAt = now;
    this.byActivity.delete(key);
    this.byActivity.set(key, open);
    // Again, so that this batch's acknowledgement waits for the record too.
    this.held.set(key, open);
    return undefined;
  }

  flush(): FilterResult {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = Infinity;
    this.byActivity.clear();
    this.byAge = [];
    this.byAgeHead = 0;
    return this.held.takeAll().map(([, record]) => this.finish(record, false));
  }

  private keyOf(message: Message): string {
    const paths = this.o.key;
    if (paths === undefined || typeof message !== 'object' || message === null) return '';
    if (paths.length === 1) return keyPart(fieldValue(message, paths[0]!));
    return JSON.stringify(paths.map((path) => keyPart(fieldValue(message, path))));
  }

  /** Emits `open` and lets the line begin the next record of its key. */
  private replace(key: string, open: Held, truncated: boolean, message: Message, text: string, state: number, now: number): FilterResult {
    const done = this.end(key, open, truncated);
    const evicted = this.begin(key, message, text, state, now);
    return evicted.length > 0 ? [done, ...evicted] : done;
  }

  private begin(key: string, message: Message, text: string, state: number, now: number): readonly Message[] {
    const record: Held = { key, first: message, text, lines: 1, bytes: Buffer.byteLength(text), state, firstAt: now, lastAt: now };
    // Making room here rather than in the keyed state, which would look for its oldest key in its Map.
    let evicted = NONE;
    if (this.held.size >= this.o.max_keys) {
      const oldest = this.oldest()!;
      evicted = [this.end(oldest.key, oldest, false)];
    }
    this.held.set(key, record);
    this.byActivity.set(key, record);
    this.byAge.push(record);
    // Records gone pile up behind the oldest one held (a long record) or before it: drop them now and then.
    if (this.byAge.length - this.byAgeHead > 2 * this.held.size + 1024) {
      this.byAge = this.byAge.slice(this.byAgeHead).filter((r) => r !== undefined && this.held.get(r.key) === r);
      this.byAgeHead = 0;
    } else if (this.byAgeHead > 1024 && this.byAgeHead * 2 > this.byAge.length) {
      this.byAge = this.byAge.slice(this.byAgeHead);
      this.byAgeHead = 0;
    }
    // A new record's deadlines come after every other's, so a timer already set comes first anyway.
    if (this.timerAt === Infinity) this.arm(now + Math.min(this.o.idle, this.o.max_age));
    return evicted;
  }

  /** The oldest record held, or undefined. */
  private oldest(): Held | undefined {
    while (this.byAgeHead < this.byAge.length) {
      const record = this.byAge[this.byAgeHead]!;
      if (this.held.get(record.key) === record) return record;
      this.byAge[this.byAgeHead++] = undefined;
    }
    return undefined;
  }

  private end(key: string, record: Held, truncated: boolean): Message {
    this.held.take(key);
    this.byActivity.delete(key);
    return this.finish(record, truncated);
  }

  /** The message a record becomes: the first line's message with every line's text in `field`, and how many lines. */
  private finish(record: Held, truncated: boolean): Message {
    const { first } = record;
    if (typeof first === 'string' || !isRecord(first)) return record.text;
    if (record.lines > 1) setField(first, this.o.field, record.text);
    put(first, 'lines', record.lines);
    if (truncated) put(first, 'truncated', true);
    return first;
  }

  private arm(at: number): void {
    if (at >= this.timerAt) return;
    this.cancelTimer?.();
    this.timerAt = at;
    const token = ++this.timerToken;
    this.cancelTimer = this.context.schedule(Math.max(1, at - this.context.clock.now()), () => this.expire(token));
  }

  /** Emits the records whose idle time or age ran out, then sets the timer for the next one. */
  private expire(token: number): FilterResult {
    // A timer cancelled after it fired can still arrive: only the latest counts.
    if (token !== this.timerToken) return undefined;
    this.timerAt = Infinity;
    this.cancelTimer = undefined;
    const now = this.context.clock.now();
    const out: Message[] = [];
    for (const [key, record] of this.byActivity) {
      if (record.lastAt + this.o.idle > now) break;
      out.push(this.end(key, record, false));
    }
    for (let record = this.oldest(); record !== undefined && record.firstAt + this.o.max_age <= now; record = this.oldest()) {
      out.push(this.end(record.key, record, false));
    }
    let next = Infinity;
    for (const record of this.byActivity.values()) {
      next = record.lastAt + this.o.idle;
      break;
    }
    const oldest = this.oldest();
    if (oldest !== undefined) next = Math.min(next, oldest.firstAt + this.o.max_age);
    if (next < Infinity) this.arm(next);
    return out;
  }
}

function keyPart(value: unknown): string {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value) ?? '';
}

export default defineFilter({
  summary: 'Join the lines of one record (a stack trace, a multi-line message) into one message.',
  description:
    'Each line either continues the open record of its key or begins a new one, as start, continue or a preset decide. ' +
    'A record is emitted when the next record of its key begins, once idle passes without a line for its key, once max_age ' +
    'has passed since its first line (so steady traffic cannot hold it forever), when it reaches max_lines or max_bytes ' +
    '(with "truncated": true; the rest begins a new record, nothing is dropped), when max_keys records are held and another ' +
    'key comes (the oldest goes), and at the end of input or on SIGINT/SIGTERM. The record is the first line\'s message with ' +
    '`field` holding every line joined by separator, plus "lines": N (with --decoder Null, the joined text alone, which cannot ' +
    'carry the truncated mark). A message whose field is not a string ends the open record of its key and goes on after it. ' +
    'idle and max_age count arrival time, not event time. In --stats a line merged into a record counts as dropped, and a record ' +
    'emitted later by a timer or at the end as created. Memory: the text of up to max_keys records, each at most max_bytes. ' +
    'Presets: python (a log line, then "Traceback (most recent call last):" or "Stack (...)", indented frames, the exception ' +
    'line, and chained tracebacks after "During handling of the above exception..." or "The above exception was the direct ' +
    'cause..."; exception groups), java (an exception line such as java.lang.IllegalStateException: ... or a log line, then ' +
    '"\\tat ...", "Caused by: ...", "\\t... N more", "Suppressed:"), go ("panic:" or "fatal error:", then "goroutine N [...]:" ' +
    'stacks, "created by ...", "exit status N"), ruby (an uncaught exception\'s "file.rb:N:in ...: text (Class)" or a log line, then "\\tfrom ..." lines, ' +
    'file.rb:N:in ... lines and indented lines). ' +
    'Empty lines are skipped by the line inputs, so a record holds the lines of a trace without its empty ones.',
  examples: [
    `message-passing --input File --input_options '{filename: "app.log"}' --decoder Null --filter Multiline --filter_options '{preset: "python"}' --encoder Null`,
    `message-passing --decoder Null --filter Parse --filter_options '{pattern: "%{PYTHON_LOGGING}", on_mismatch: "pass"}' --filter Multiline --filter_options '{preset: "python"}' < app.log`,
    `message-passing --input File --input_options '{filename: "/var/log/containers/*.log", origin: "origin", follow: true}' --filter Multiline --filter_options '{field: "log", separator: "", key: "origin.file", preset: "java"}'`,
  ],
  options,
  check(o) {
    const given = (['start', 'continue', 'preset'] as const).filter((k) => o[k] !== undefined);
    if (given.length !== 1) return `give one of start, continue or preset${given.length ? ` (not ${given.join(' and ')})` : ''}`;
    if (o.preset !== undefined && o.negate) return 'negate goes with start or continue, not with a preset';
    try {
      joinerOf(o);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    return undefined;
  },
  create(o, context) {
    const assembler = new Assembler(o, context);
    return { filter: (message) => assembler.filter(message), flush: () => assembler.flush() };
  },
});
