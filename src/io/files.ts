// Which files a File input reads: one path or a pattern, and why one cannot be read.
import type { Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isMissing, systemReason } from './system-errors.js';

/**
 * What to read: one path, or a pattern with `*` (any run of characters) and
 * `?` (one character) in its last part only, like `/var/log/app/*.log`.
 * Wildcards do not match a leading dot, as in the shell.
 */
export class FilePattern {
  readonly directory: string;
  readonly name: string;
  private readonly matcher: RegExp | undefined;

  constructor(filename: string) {
    const full = resolve(filename);
    this.directory = dirname(full);
    this.name = basename(full);
    this.matcher = hasWildcard(this.name) ? wildcardRegExp(this.name) : undefined;
  }

  get isPattern(): boolean {
    return this.matcher !== undefined;
  }

  /** The one path when this is not a pattern. */
  get path(): string {
    return join(this.directory, this.name);
  }

  matches(name: string): boolean {
    return this.matcher ? this.matcher.test(name) : name === this.name;
  }

  /** Paths that exist now, sorted; a missing folder is no match. */
  async list(): Promise<string[]> {
    if (!this.matcher) return [this.path];
    let entries;
    try {
      entries = await readdir(this.directory, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    return entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && this.matches(e.name))
      .map((e) => join(this.directory, e.name))
      .sort();
  }
}

export function hasWildcard(text: string): boolean {
  return /[*?]/.test(text);
}

export function wildcardRegExp(pattern: string): RegExp {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  // Like the shell, a wildcard at the start does not match a hidden file.
  const hidden = pattern.startsWith('.') ? '' : '(?!\\.)';
  return new RegExp(`^${hidden}${source}$`, 's');
}

export function notARegularFile(info: Stats): Error {
  const error = new Error('it is not a regular file (follow reads regular files only)');
  return info.isDirectory() ? Object.assign(error, { code: 'EISDIR' }) : error;
}

/** A file that cannot be read, said in one line: "cannot read PATH: why". */
export class FileError extends Error {
  constructor(
    readonly path: string,
    override readonly cause: unknown,
  ) {
    super(`cannot read ${path}: ${systemReason(cause)}`);
  }
}
