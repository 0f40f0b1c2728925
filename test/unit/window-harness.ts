// A chain in process for the window filters' tests (Dedupe, Threshold, Inhibit):
// JSON codecs, an output in memory, a ManualClock, acknowledgements counted.
import jsonCodec from '../../src/codecs/json.js';
import { Chain } from '../../src/core/chain.js';
import { UsageError } from '../../src/core/errors.js';
import { validateOptions } from '../../src/core/options.js';
import type { AnyPlugin, Message, Output } from '../../src/core/plugin.js';
import { ManualClock } from '../../src/core/state.js';

export interface Stage {
  plugin: AnyPlugin<'filter'>;
  options: Record<string, unknown>;
}

export interface Harness {
  clock: ManualClock;
  chain: Chain;
  /** Every message the output was handed, in order. */
  out: Message[];
  warnings: string[];
  /** How many batches sent were acknowledged. */
  acked(): number;
  /** Sends messages as one batch (one JSON frame each), acknowledged like a File input's. */
  send(...messages: unknown[]): Promise<void>;
  /** Moves the clock on (timers fire) and waits for what they pushed. */
  advance(ms: number): Promise<void>;
  /** Ends the input: every filter flushes. */
  end(): Promise<void>;
  /** The messages written since the last call. */
  take(): Message[];
}

/** Validates options as the command line does: a UsageError for a bad one. A key given as undefined is left out. */
export function prepared(plugin: AnyPlugin<'filter'>, name: string, raw: Record<string, unknown>): Record<string, unknown> {
  const given = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  const options = validateOptions(`--filter ${name}`, plugin.options, given);
  const problem = plugin.check?.(options);
  if (problem) throw new UsageError(`--filter ${name}: ${problem}`);
  return options;
}

export async function harness(stages: readonly Stage[], start = 0): Promise<Harness> {
  const clock = new ManualClock(start);
  const out: Message[] = [];
  const warnings: string[] = [];
  let taken = 0;
  let acknowledged = 0;
  const json = await jsonCodec.create({}, {});
  const memory = (sink: Message[]): Output => ({
    write: (_frames, messages) => {
      sink.push(...messages);
    },
    close: async () => undefined,
  });
  const errors: Message[] = [];
  const chain = await Chain.build({
    decoder: json,
    encoder: json,
    errorOutput: memory(errors),
    output: () => memory(out),
    filters: stages.map((stage, i) => ({
      name: `${i}`,
      create: (context) => stage.plugin.create(stage.options as never, context),
    })),
    clock,
    warn: (line) => warnings.push(line),
  });
  const input = chain.inputContext();
  const settle = async () => {
    // Timers push through promises: let them run.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  return {
    clock,
    chain,
    out,
    warnings,
    acked: () => acknowledged,
    async send(...messages) {
      await input.emit({ frames: messages.map((m) => JSON.stringify(m)), source: 'test', first: 1, ack: () => acknowledged++ });
      await settle();
      if (errors.length) throw new Error(`error records: ${JSON.stringify(errors)}`);
    },
    async advance(ms) {
      clock.advance(ms);
      await settle();
    },
    async end() {
      await chain.run({ run: async () => undefined });
      if (errors.length) throw new Error(`error records: ${JSON.stringify(errors)}`);
    },
    take() {
      const fresh = out.slice(taken);
      taken = out.length;
      return fresh;
    },
  };
}

/** Epoch ms of a time on 2026-11-22 given as "HH:MM:SS.mmm" (UTC). */
export const at = (time: string): string => `2026-11-22T${time}Z`;
