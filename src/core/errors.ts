import { isUtf8 } from 'node:buffer';

/** The program's name, as it prefixes every line it writes on stderr. */
export const PROGRAM = 'message-passing';

/** `1 message`, `2 messages`. */
export const plural = (count: number, word: string, words = `${word}s`) => `${count} ${count === 1 ? word : words}`;

/** A mistake in what the user typed: exit 2, one line, nothing started. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure while running (address in use, unreadable file): exit 1, one line. */
export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

/** The shape of one record on the error output (contract section 6). */
export interface ErrorRecord {
  error: string;
  reason: string;
  source: string;
  frame?: string;
  encoding?: 'base64';
  [extra: string]: unknown;
}

/** Frames copied into error records are cut to this many characters. */
export const ERROR_FRAME_LIMIT = 1024;

/** A readable copy of a bad frame: text when it is valid UTF-8, base64 otherwise. */
export function frameCopy(frame: string | Uint8Array): Pick<ErrorRecord, 'frame' | 'encoding'> {
  if (typeof frame === 'string') return { frame: cut(frame) };
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (isUtf8(bytes)) return { frame: cut(bytes.toString('utf8')) };
  // Base64 of the first bytes only: 3 bytes become 4 characters.
  return { frame: cut(bytes.subarray(0, (ERROR_FRAME_LIMIT / 4) * 3).toString('base64')), encoding: 'base64' };
}

function cut(text: string): string {
  return text.length > ERROR_FRAME_LIMIT ? text.slice(0, ERROR_FRAME_LIMIT) : text;
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failure from below (io) as one line under `label`: a usage error when it says what the user gave is malformed. */
export function fatal(label: string, error: unknown): UsageError | RuntimeError {
  if (error instanceof UsageError || error instanceof RuntimeError) return error;
  const message = `${label}: ${describe(error)}`;
  return (error as { misuse?: unknown } | undefined)?.misuse === true ? new UsageError(message) : new RuntimeError(message);
}
