// One built-in filter in a real chain, in process: messages in through the
// input's door, out into memory, time on a hand-driven clock. What the chain
// counts, what reaches the error output and when batches are acknowledged are
// all visible, as a user sees them through --stats, --error and checkpoints.
import jsonCodec from '../../src/codecs/json.js';
import nullCodec from '../../src/codecs/null.js';
import { Chain, type Counters } from '../../src/core/chain.js';
import { UsageError, type ErrorRecord } from '../../src/core/errors.js';
import { validateOptions } from '../../src/core/options.js';
import type { AnyPlugin, Message, Output } from '../../src/core/plugin.js';
import { ManualClock } from '../../src/core/state.js';

export interface Harness {
  clock: ManualClock;
  /** Messages the output received, in order. */
  out: Message[];
  errors: ErrorRecord[];
  counters: Counters;
  /** Sends one batch: objects are encoded as JSON lines with the JSON decoder, strings go as lines with Null. Returns a function telling whether the batch was acknowledged. */
  send(messages: readonly Message[]): () => boolean;
  /** Ends the input: the filter's flush runs, as at end of input or on SIGTERM. */
  end(): Promise<void>;
}

/** Validates `options` as the command line does (schema, then check), so a usage error throws UsageError. */
export function prepare(plugin: AnyPlugin<'filter'>, options: unknown): Record<string, unknown> {
  const validated = validateOptions('--filter Test', plugin.options, options);
  const problem = plugin.check?.(validated);
  if (problem) throw new UsageError(`--filter Test: ${problem}`);
  return validated;
}

export async function harness(plugin: AnyPlugin<'filter'>, options: unknown, codec: 'json' | 'null' = 'json'): Promise<Harness> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const validated = prepare(plugin, options);
  const out: Message[] = [];
  const errors: ErrorRecord[] = [];
  const memory = (into: unknown[]): Output => ({
    write: (_frames, messages) => {
      into.push(...messages);
    },
    close: async () => undefined,
  });
  const decoder = await (codec === 'json' ? jsonCodec : nullCodec).create({}, {});
  const chain = await Chain.build({
    decoder,
    encoder: decoder,
    errorOutput: memory(errors),
    output: () => memory(out),
    filters: [{ name: 'Test', create: (context) => plugin.create(validated, context) }],
    clock,
  });
  const input = chain.inputContext();
  let line = 1;
  return {
    clock,
    out,
    errors,
    counters: chain.counters,
    send(messages) {
      let acknowledged = false;
      const frames = messages.map((m) => (codec === 'json' ? JSON.stringify(m) : String(m)));
      void input.emit({ frames, source: 'test', first: line, ack: () => (acknowledged = true) });
      line += frames.length;
      return () => acknowledged;
    },
    end: () => chain.run({ run: async () => undefined }),
  };
}
