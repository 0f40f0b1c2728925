// What the program says about itself: --help, --list, --help PLUGIN, --version, completion, the man page.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { flags } from '../../src/cli/flags.js';
import type { OptionSpec } from '../../src/core/options.js';
import { registry, type RegistryEntry } from '../../src/cli/registry.js';
import { ROOT, run } from './helpers.js';

const roleTitle = { input: 'Inputs:', output: 'Outputs:', filter: 'Filters:', codec: 'Decoders and encoders:' } as const;
const visibleFlags = flags.filter((f) => !f.hidden);

/** The text of one role's section of --list. */
function section(list: string, role: RegistryEntry['role']): string {
  const from = list.indexOf(roleTitle[role]);
  const next = list.indexOf('\n\n', from);
  return list.slice(from, next < 0 ? undefined : next);
}

function typeLabel(spec: OptionSpec): string {
  if (spec.type === 'string' && spec.choices) return spec.choices.join('|');
  if (spec.type === 'strings') return 'string or list';
  return spec.type;
}

describe.concurrent('documentation', () => {
  it('--help lists every flag and exits 0', async () => {
    const { code, stdout, stderr } = await run(['--help']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    for (const flag of visibleFlags) expect(stdout).toContain(`--${flag.name}`);
    expect(stdout).not.toContain('--man');
    expect(stdout).toContain('Also -h.');
    expect(stdout).toContain('Also -v, -V.');
    expect((await run(['-h'])).stdout).toBe(stdout);
  });

  it('--list names every plugin in the registry, under its role, with its aliases', async () => {
    const { code, stdout } = await run(['--list']);
    expect(code).toBe(0);
    for (const entry of registry) {
      const own = section(stdout, entry.role);
      expect(own, `${entry.role} ${entry.name}`).toMatch(new RegExp(`^  ${entry.name}\\b`, 'm'));
      for (const alias of entry.aliases ?? []) expect(own).toContain(alias);
    }
  });

  it.each([...new Set(registry.map((e) => e.name))])('--help %s shows each option with its type and default', async (name) => {
    const { code, stdout, stderr } = await run(['--help', name.toLowerCase()]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    for (const entry of registry.filter((e) => e.name === name)) {
      const plugin = (await entry.load()).default;
      expect(stdout).toContain(`${entry.name} (${entry.role === 'codec' ? 'decoder/encoder' : entry.role}): ${plugin.summary}`);
      expect(plugin.examples?.length, `${entry.role} ${entry.name} shows an example`).toBeGreaterThan(0);
      for (const example of plugin.examples ?? []) expect(stdout).toContain(`  ${example}\n`);
      for (const [key, spec] of Object.entries(plugin.options)) {
        const dflt = spec.required ? 'required' : spec.default === undefined ? 'optional' : `default ${JSON.stringify(spec.default)}`;
        expect(stdout).toMatch(new RegExp(`^  ${key}\\b.*  ${escape(typeLabel(spec))}, ${escape(dflt)}\\. `, 'm'));
      }
    }
  });

  it('--help STDIN and --help File read as a user expects', async () => {
    const stdin = await run(['--help', 'STDIN']);
    expect(stdin.stdout).toMatch(/^  max_line_length +size, default "1MiB"\. /m);
    const file = await run(['--help', 'File']);
    expect(file.stdout).toContain('File (input):');
    expect(file.stdout).toContain('File (output):');
    expect(file.stdout).toMatch(/^  filename +string, required\. /m);
    expect(file.stdout).toMatch(/^  follow +boolean, default false\. /m);
    expect(file.stdout).toMatch(/^  append +boolean, default true\. /m);
    expect(file.stdout).toContain('Examples:');
  });

  it('--version, -v and -V print the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v', '-V']) {
      const { code, stdout } = await run([flag]);
      expect(code, flag).toBe(0);
      expect(stdout, flag).toBe(`message-passing ${version}\n`);
    }
  });

  it.each(['bash', 'zsh'])("completion %s prints yargs's script for it, which calls message-passing for the words", async (shell) => {
    const { code, stdout, stderr } = await run(['completion', shell]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('message-passing --get-yargs-completions');
    expect(stdout).toContain(shell === 'bash' ? 'complete -o bashdefault -o default -F _message-passing_yargs_completions message-passing' : 'compdef _message-passing_yargs_completions message-passing');
    if (shell === 'bash') execFileSync('bash', ['-n'], { input: stdout });
  });

  it('the committed man page is current (regenerate it with npm run man)', async () => {
    const { code, stdout } = await run(['--man']);
    expect(code).toBe(0);
    const committed = readFileSync(join(ROOT, 'man', 'message-passing.1'), 'utf8');
    expect(committed, 'man/message-passing.1 is stale: run npm run man and commit it').toBe(stdout);
  });

  it('the man page documents every flag and every plugin', async () => {
    const { stdout } = await run(['--man']);
    for (const flag of visibleFlags) expect(stdout).toContain(`.B \\-\\-${flag.name.replace(/-/g, '\\-')}`);
    for (const entry of registry) expect(stdout).toMatch(new RegExp(`^\\.SS ${entry.name}\\b`, 'm'));
    expect(stdout).toMatch(/^\.SH EXIT STATUS$/m);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('documentation through a pipe', () => {
  it('--man into a reader slower than the program writes it whole; one that quits early ends it quietly', () => {
    const bin = join(ROOT, 'bin', 'message-passing.js');
    const committed = readFileSync(join(ROOT, 'man', 'message-passing.1'));
    // The page is larger than a pipe's buffer: the reader's pause leaves part of it in flight at exit.
    const slow = execFileSync('/bin/sh', ['-c', `"${process.execPath}" "${bin}" --man | (sleep 0.5; cat)`]);
    expect(slow.equals(committed)).toBe(true);
    const early = execFileSync('/bin/sh', ['-c', `"${process.execPath}" "${bin}" --man | head -1 >/dev/null; echo "$?"`], { encoding: 'utf8' });
    expect(early).toBe('0\n');
    const status = execFileSync('/bin/bash', ['-c', `"${process.execPath}" "${bin}" --list 2>&1 | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
    expect(status).toBe('0\n');
  });
});
