// Conformance: every registered plugin declares itself completely, once.
import { describe, expect, it } from 'vitest';
import { validateOptions } from '../../src/core/options.js';
import { registry } from '../../src/cli/registry.js';

const folder = { input: 'inputs', output: 'outputs', filter: 'filters', codec: 'codecs' } as const;

describe('plugin registry', () => {
  it('has no name or alias twice within a role', () => {
    for (const role of Object.keys(folder)) {
      const names = registry.filter((e) => e.role === role).flatMap((e) => [e.name, ...(e.aliases ?? [])].map((n) => n.toLowerCase()));
      expect(new Set(names).size, `${role} names: ${names.join(', ')}`).toBe(names.length);
    }
  });

  for (const entry of registry) {
    describe(`${entry.role} ${entry.name}`, () => {
      it('lives in the file named after it, in the folder of its role', () => {
        expect(entry.load.toString()).toMatch(new RegExp(`/${folder[entry.role]}/${entry.name.toLowerCase()}\\.[jt]s\\b`));
      });

      it('declares its role, a one-line summary and a description for every option', async () => {
        const plugin = (await entry.load()).default;
        expect(plugin.role).toBe(entry.role);
        expect(plugin.summary).toMatch(/^\S.*\.\)?$/);
        expect(plugin.summary).not.toContain('\n');
        for (const [key, spec] of Object.entries(plugin.options)) {
          expect(key).toMatch(/^[a-z][a-z0-9_]*$/);
          expect(spec.description.length, `${key} needs a description`).toBeGreaterThan(10);
          if (spec.type === 'string' && spec.choices && spec.default !== undefined) expect(spec.choices).toContain(spec.default);
        }
      });

      it('accepts its own defaults', async () => {
        const plugin = (await entry.load()).default;
        const required = Object.entries(plugin.options).filter(([, spec]) => spec.required);
        if (required.length > 0) {
          expect(() => validateOptions(entry.name, plugin.options, {})).toThrow(/required/);
        } else {
          expect(() => validateOptions(entry.name, plugin.options, {})).not.toThrow();
        }
      });
    });
  }
});
