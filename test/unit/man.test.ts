// The man page as man shows it: roff, not Markdown; the filter context and the
// error records documented as in the README.
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { manPage } from '../../src/cli/docs.js';

let page: string;
beforeAll(async () => {
  page = await manPage();
});

const hasGroff = spawnSync('groff', ['-v']).status === 0;

describe('the man page', () => {
  it('writes Markdown code spans in bold, never as backticks', () => {
    expect(page).not.toContain('`');
    // From STDOUT's description: "A closed pipe (as with `| head`) ...".
    expect(page).toContain('(as with \\fB| head\\fR)');
    expect(page).toContain('(\\fB\\-\\-error\\fR; see \\fB\\-\\-error_encoder\\fR)');
  });

  it('is ASCII: other characters as roff escapes', () => {
    expect(page).toMatch(/^[\x00-\x7f]*$/);
    expect(page).toContain('\\[u2192]');
  });

  it.skipIf(!hasGroff)('renders without a warning from groff', () => {
    const rendered = spawnSync('groff', ['-man', '-ww', '-Tutf8'], { input: page, encoding: 'utf8' });
    expect(rendered.stderr).toBe('');
    expect(rendered.status).toBe(0);
  });

  it('documents the filter context: push, schedule, clock, keyed state', () => {
    for (const name of ['push(message) or push([message, ...])', 'schedule(ms, fire)', 'clock.now()', 'keyed({maxKeys, evict(key, value)})']) {
      expect(page).toContain(`.B ${name.replace(/-/g, '\\-')}`);
    }
  });

  it("documents error records' source and stage, the --stats identity, and what Perl refuses", () => {
    expect(page).toContain('\\fB"stage"\\fR: \\fB"filter NAME"\\fR, \\fB"encoder NAME"\\fR or \\fB"output NAME"\\fR');
    expect(page).toContain('in + created = out + dropped + errors');
    expect(page).toContain("Perl's \\fBmessage\\-pass\\fR refuses a frame that is not an object or an array");
  });
});
