// The command as a user installs it: the package npm packs from this clone,
// installed into a prefix of its own and run from a folder outside the clone.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, lines, run, tempDir } from './helpers.js';

const exec = promisify(execFile);
const dir = tempDir();
const prefix = join(dir, 'prefix');
const installed = join(prefix, 'lib', 'node_modules', 'message-passing');
/** The installed command first on PATH, and the node running these tests for its `#!/usr/bin/env node`. */
const env = { PATH: [join(prefix, 'bin'), dirname(process.execPath), process.env.PATH].join(delimiter) };
const outside = join(dir, 'elsewhere');
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs the installed `message-passing` from PATH, in a folder outside the clone. */
const runInstalled = (args: string[], input = '', extraEnv: Record<string, string> = {}) =>
  run(args, { command: 'message-passing', cwd: outside, input, env: { ...env, ...extraEnv } });

beforeAll(async () => {
  await exec('mkdir', ['-p', outside]);
  // dist/ is what `npm test` built; packing does not build it again.
  const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT });
  const [{ filename }] = JSON.parse(stdout) as Array<{ filename: string }>;
  // The dependencies come from npm's cache, or the registry when they are not there;
  // zeromq's prebuilt binaries need no install script.
  await exec(
    'npm',
    ['install', '--global', '--prefix', prefix, join(dir, filename), '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: outside },
  );
}, 180_000);

describe('the installed package', () => {
  it('puts message-passing on PATH; it runs from any folder, without the clone', async () => {
    expect(existsSync(join(installed, 'src'))).toBe(false);
    const copy = await runInstalled([], '{"hello":"world"}\n');
    expect(copy).toMatchObject({ code: 0, stderr: '' });
    expect(lines(copy.stdout)).toEqual([{ hello: 'world' }]);
    const versionRun = await runInstalled(['-V']);
    expect(versionRun.stdout).toBe(`message-passing ${version}\n`);
    const help = await runInstalled(['--help', 'File']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^File \(input\): /);
  });

  it('runs the bundle, as fast as the clone: no file times compared, no unbundled modules', async () => {
    const traced = await runInstalled(['--input', 'STDIN'], '{"a":1}\n', { NODE_DEBUG: 'module' });
    expect(traced.code).toBe(0);
    expect(traced.stdout).toBe('{"a":1}\n');
    expect(traced.stderr).toContain(`load "${join(installed, 'dist', 'message-passing.cjs')}"`);
    // The modules tsc made, and yargs from node_modules, are what the slower path loads.
    expect(traced.stderr).not.toMatch(/dist\/cli\/main\.js|node_modules\/yargs\//);
  });

  it('installs its man page', () => {
    expect(readFileSync(join(prefix, 'share', 'man', 'man1', 'message-passing.1'), 'utf8')).toMatch(/^\.TH MESSAGE\\-PASSING 1/);
  });
});
