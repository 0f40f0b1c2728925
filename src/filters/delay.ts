import { defineFilter, one, type Message } from '../core/plugin.js';

interface Waiting {
  message: Message;
  /** Clock time at which it goes on. */
  due: number;
}

export default defineFilter({
  summary: "Pass every message on after a delay, in order (Perl's Filter::Delay).",
  description:
    'Each message goes on delay_for after it arrived, in the order they came; at the end of input (or on SIGINT/SIGTERM) ' +
    'every message still waiting goes on at once, without waiting. Past max_messages waiting, the oldest goes on early ' +
    'rather than memory growing. Perl counts delay_for in seconds: here a bare number is milliseconds, so write "1s". ' +
    'In --stats a delayed message counts as dropped when it arrives and as created when it goes on. Useful in tests, ' +
    'or to give a slower source time to catch up.',
  examples: [`message-passing --filter Delay --filter_options '{delay_for: "500ms"}'`],
  options: {
    delay_for: { type: 'duration', required: true, description: 'How long each message waits, e.g. "1s" or "250ms".', example: '1s' },
    max_messages: {
      type: 'integer',
      min: 1,
      default: 100_000,
      description: 'Most messages waiting at once; one more and the oldest goes on at once.',
    },
  },
  create(o, context) {
    const { delay_for: delay } = o;
    if (delay === 0) return { filter: one };
    const { clock } = context;
    // Keyed by arrival number: messages leave strictly in order, so the oldest is always `next`
    // (found without walking the keyed state's Map, which keeps holes where its oldest keys were).
    const waiting = context.keyed<Waiting>({ maxKeys: o.max_messages, evict: (_, entry) => one(entry.message) });
    let sequence = 0;
    let next = 0;
    let timerAt = Infinity;
    let timerToken = 0;
    let cancelTimer: (() => void) | undefined;

    const arm = (at: number) => {
      cancelTimer?.();
      timerAt = at;
      const token = ++timerToken;
      cancelTimer = context.schedule(Math.max(1, at - clock.now()), () => release(token));
    };
    /** Sends on every message whose time has come, in order, and waits for the next. */
    const release = (token: number): Message[] | undefined => {
      if (token !== timerToken) return undefined;
      timerAt = Infinity;
      cancelTimer = undefined;
      const now = clock.now();
      const out: Message[] = [];
      for (; next < sequence; next++) {
        const entry = waiting.get(String(next))!;
        if (entry.due > now) {
          arm(entry.due);
          break;
        }
        waiting.take(String(next));
        out.push(entry.message);
      }
      return out;
    };
    return {
      filter(message) {
        const due = clock.now() + delay;
        let early: Message | undefined;
        if (waiting.size >= o.max_messages) early = waiting.take(String(next++))!.message;
        waiting.set(String(sequence++), { message, due });
        if (timerAt === Infinity) arm(due);
        return early;
      },
      flush() {
        cancelTimer?.();
        cancelTimer = undefined;
        timerAt = Infinity;
        next = sequence;
        return waiting.takeAll().map(([, entry]) => entry.message);
      },
    };
  },
});
