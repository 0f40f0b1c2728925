// The one table of system errors in words a person can act on. What the
// program was doing decides the hint: a file, or a network address.

type Subject = 'file' | 'address';

const SENTENCES: Record<string, Partial<Record<Subject, string>> & { any?: string }> = {
  ENOENT: { file: 'no such file', address: 'no such file or directory (create the directory that holds the socket first)' },
  ENOTDIR: { any: 'a part of the path is not a folder' },
  EACCES: {
    file: 'permission denied (check its permissions and those of its folders)',
    address: 'permission denied (ports below 1024 need privileges; choose a higher port)',
  },
  EPERM: { file: 'permission denied (check its permissions and those of its folders)', address: 'operation not permitted' },
  EISDIR: { any: 'it is a folder (give a file name, or a pattern like dir/*.log to read)' },
  ENOSPC: { any: 'the disk is full' },
  EROFS: { any: 'the file system is read-only' },
  EMFILE: { any: 'too many open files (raise the limit with ulimit -n)' },
  EADDRINUSE: { any: 'address already in use (another program is bound to it; stop that program or choose another port)' },
  EADDRNOTAVAIL: { any: "no interface of this host has that address (bind to one of this host's addresses, or to all of them: * or 0.0.0.0)" },
  ECONNREFUSED: { any: 'connection refused (is the server running, on that port?)' },
  ECONNRESET: { any: 'connection reset by the peer' },
  ETIMEDOUT: { any: 'timed out' },
  EHOSTUNREACH: { any: 'host unreachable' },
  ENOTFOUND: { any: 'no such host (check the name)' },
  EAI_AGAIN: { any: 'the host name could not be resolved now (DNS)' },
};

export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

export function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Why `error` happened, in words; the error's own message when the table has no sentence for it. */
export function systemReason(error: unknown, subject: Subject = 'file'): string {
  const code = errorCode(error);
  const known = code === undefined ? undefined : SENTENCES[code];
  const sentence = known?.[subject] ?? known?.any;
  if (sentence) return sentence;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${message} (${code})` : message;
}
