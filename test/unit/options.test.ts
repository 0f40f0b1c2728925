import { describe, expect, expectTypeOf, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { type OptionsOf, type OptionsSchema, validateOptions } from '../../src/core/options.js';

const schema = {
  flush_after: { type: 'duration', default: '1s', description: 'How long to wait before flushing.' },
  window: { type: 'duration', min: '1s', max: '1d', description: 'The window.' },
  interval: { type: 'duration', min: 1, required: true, description: 'How often.' },
  max_bytes: { type: 'size', default: '64KiB', min: '1KiB', description: 'The cap.' },
  chunk: { type: 'size', max: 1024, description: 'A chunk.' },
} as const satisfies OptionsSchema;

const where = 'filter Batch';

function usageError(raw: unknown): string {
  try {
    validateOptions(where, schema, raw);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`${JSON.stringify(raw)} was accepted`);
}

describe('duration and size options', () => {
  it('are typed as numbers', () => {
    type Options = OptionsOf<typeof schema>;
    expectTypeOf<Options['flush_after']>().toEqualTypeOf<number>();
    expectTypeOf<Options['interval']>().toEqualTypeOf<number>();
    expectTypeOf<Options['window']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<Options['max_bytes']>().toEqualTypeOf<number>();
    expectTypeOf<Options['chunk']>().toEqualTypeOf<number | undefined>();
  });

  it('apply their defaults as numbers', () => {
    const options = validateOptions(where, schema, { interval: '5m' });
    expect(options).toEqual({ flush_after: 1000, interval: 300_000, max_bytes: 65_536 });
  });

  it('take strings and numbers', () => {
    const options = validateOptions(where, schema, {
      flush_after: '250ms',
      window: '1.5h',
      interval: 20,
      max_bytes: '1MiB',
      chunk: 512,
    });
    expect(options).toEqual({ flush_after: 250, window: 5_400_000, interval: 20, max_bytes: 1_048_576, chunk: 512 });
    expect(validateOptions(where, schema, { interval: '1d', max_bytes: '1.5KiB', chunk: '1KB', flush_after: 0 })).toMatchObject({
      interval: 86_400_000,
      max_bytes: 1536,
      chunk: 1000,
      flush_after: 0,
    });
  });

  it('keep the bounds inclusive', () => {
    expect(validateOptions(where, schema, { interval: 1, window: '1s', max_bytes: 1024, chunk: '1KiB' })).toMatchObject({
      window: 1000,
      max_bytes: 1024,
      chunk: 1024,
    });
    expect(validateOptions(where, schema, { interval: 1, window: 86_400_000 }).window).toBe(86_400_000);
  });

  it('name the plugin, the option, the form expected and the value given', () => {
    expect(usageError({ interval: '1 s' })).toBe(
      `filter Batch: option 'interval' must be a duration like "250ms", "1.5s", "5m", "1h" or "1d", or a number of milliseconds, ` +
        `got the string "1 s" (no space between the number and its unit)`,
    );
    expect(usageError({ interval: '5M' })).toMatch(/option 'interval' must be a duration like .*, got the string "5M" \(units are lowercase: "5m"\)$/);
    expect(usageError({ interval: '250' })).toMatch(/got the string "250" \(a string needs a unit: "250ms" or "250s"\?\)$/);
    expect(usageError({ interval: true })).toMatch(/^filter Batch: option 'interval' must be a duration like .*, got boolean true$/);
    expect(usageError({ interval: -5 })).toMatch(/got number -5 \(it cannot be negative\)$/);
    expect(usageError({ interval: 1, max_bytes: '64K' })).toBe(
      `filter Batch: option 'max_bytes' must be a size like "512B", "64KiB", "1MiB", "1GiB" or "10MB", or a number of bytes, ` +
        `got the string "64K" ("K" could mean 1000 or 1024: write "64KiB" or "64KB")`,
    );
    expect(usageError({ interval: 1, chunk: 1.5 })).toMatch(/option 'chunk' must be a size like .*, got number 1.5 \(a whole number of bytes\)$/);
    expect(usageError({ interval: 1, chunk: null })).toMatch(/option 'chunk' must be a size like .*, got null$/);
  });

  it('report a value out of bounds in the units of the bound', () => {
    expect(usageError({ interval: 0 })).toBe(`filter Batch: option 'interval' must be at least 1ms, got number 0`);
    expect(usageError({ interval: 1, window: '500ms' })).toBe(`filter Batch: option 'window' must be at least 1s, got the string "500ms"`);
    expect(usageError({ interval: 1, window: '25h' })).toBe(`filter Batch: option 'window' must be at most 1d, got the string "25h"`);
    expect(usageError({ interval: 1, max_bytes: 1000 })).toBe(`filter Batch: option 'max_bytes' must be at least 1KiB, got number 1000`);
    expect(usageError({ interval: 1, chunk: '2KiB' })).toBe(`filter Batch: option 'chunk' must be at most 1KiB, got the string "2KiB"`);
  });

  it('are required like any other option', () => {
    expect(usageError({})).toBe(`filter Batch: option 'interval' is required (How often.)`);
  });

  it('check a default against the bounds too', () => {
    const wrong = { timeout: { type: 'duration', default: '1s', min: '2s', description: 'A timeout.' } } as const satisfies OptionsSchema;
    expect(() => validateOptions('input X', wrong, {})).toThrow(`input X: option 'timeout' must be at least 2s, got the string "1s"`);
  });

  it('leave other option types as they were', () => {
    const others = {
      name: { type: 'string', default: 'x', description: 'A name.' },
      count: { type: 'integer', default: 3, min: 1, description: 'A count.' },
      tags: { type: 'strings', default: ['a'], description: 'Tags.' },
    } as const satisfies OptionsSchema;
    const options = validateOptions('output Y', others, {});
    expect(options).toEqual({ name: 'x', count: 3, tags: ['a'] });
    expect(options.tags).not.toBe(others.tags.default);
    expect(() => validateOptions('output Y', others, { count: 0 })).toThrow(`output Y: option 'count' must be at least 1, got number 0`);
  });
});
