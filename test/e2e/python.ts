// python3 for the tests that check against Python's own pickle and logging.
import { execFileSync } from 'node:child_process';

/**
 * The interpreter itself: a version manager's shim (pyenv) runs a shell script
 * first, about 300 ms per start, which the tests that start many pythons feel.
 */
export const PYTHON = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

/** Runs `script` with `input` on stdin; returns what it printed. */
export function python(script: string, input: Buffer | string = ''): string {
  return execFileSync(PYTHON, ['-c', script], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
}
