import { parseArgs } from './args.js';
import { build } from './build.js';
import { filterScope, type Chain } from '../core/chain.js';
import { describe, plural, PROGRAM, RuntimeError, UsageError } from '../core/errors.js';

/** Signals this close together are one stop; a second one ends the run at once. */
const SAME_STOP_MS = 500;

/** `queued` shows only while the output holds messages it has not handed on (a PUSH without a peer). */
function statsLine(chain: Chain, seconds: number, rate: number): string {
  const { in: read, created, out, queued, dropped, errors } = chain.tally();
  const extra = chain.outputStats();
  return (
    `${PROGRAM}: stats in=${read} created=${created} out=${out}${queued > 0 ? ` queued=${queued}` : ''} dropped=${dropped} errors=${errors} ` +
    `rate=${Math.round(rate)}/s elapsed=${seconds.toFixed(1)}s${extra ? ` ${extra}` : ''}\n`
  );
}

async function main(argv: readonly string[]): Promise<number> {
  const settings = parseArgs(argv);
  if (settings.completion !== undefined || settings.help !== undefined || settings.list || settings.version || settings.man) {
    const { printDocs } = await import('./docs.js');
    await printDocs(settings);
    return 0;
  }
  // Perl's process flags; the module loads only when one is given.
  const control = settings.daemonize || settings.pidFile || settings.user || settings.ioPriority ? await import('./daemon.js') : undefined;
  if (control) {
    control.checkDaemonize(settings);
    if (settings.daemonize && !control.isDaemon()) return control.detach();
    daemon = control;
  }
  const account = settings.user === undefined ? undefined : control!.lookUpUser(settings.user);
  if (settings.pidFile !== undefined) control!.writePidFile(settings.pidFile);
  if (settings.ioPriority !== undefined) control!.setIoPriority(settings.ioPriority);
  const { chain, run } = await build(settings);
  running = chain;
  for (const [filter, error] of early.splice(0)) chain.filterThrew(filter, error);
  // Sockets are bound and the outputs' files open: what needs root is done.
  if (account) control!.becomeUser(account);
  control?.started();

  let firstSignalAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt === undefined) {
      firstSignalAt = Date.now();
      chain.stopping.abort();
      return;
    }
    // timeout(1) sends its signal twice at once, to the program and to its process group:
    // that is one stop, not a second one.
    if (Date.now() - firstSignalAt < SAME_STOP_MS) return;
    // A second signal ends the run at once, without draining: say what that cost.
    const { unfinished, queued } = chain.tally();
    const left = unfinished + queued;
    say(`${PROGRAM}: second ${signal}: stopped at once; ${left === 0 ? 'no message was' : `${plural(left, 'message was', 'messages were')}`} left behind${queued > 0 ? ` (${queued} queued in the output)` : ''}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // The `performance` global loads perf_hooks (~2 ms of start-up): only for --stats.
  const started = settings.stats === undefined ? 0 : performance.now();
  let timer: NodeJS.Timeout | undefined;
  if (settings.stats !== undefined) {
    let last = { at: started, in: 0 };
    timer = setInterval(() => {
      const now = performance.now();
      process.stderr.write(statsLine(chain, (now - started) / 1000, ((chain.counters.in - last.in) * 1000) / (now - last.at)));
      last = { at: now, in: chain.counters.in };
    }, settings.stats * 1000);
    timer.unref();
  }
  try {
    await run();
  } finally {
    clearInterval(timer);
    if (settings.stats !== undefined) {
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(statsLine(chain, seconds, chain.counters.in / Math.max(seconds, 1e-3)));
    }
  }
  return 0;
}

/** The daemon.js module, once a process flag loaded it. */
let daemon: typeof import('./daemon.js') | undefined;

/** A line on stderr; a daemon still starting tells the command that started it instead. */
function say(line: string): void {
  if (!daemon?.startupLine(line)) process.stderr.write(line);
}

/** One line a person can act on; the stack only when DEBUG is set. */
function report(error: unknown): number {
  if (process.env.DEBUG && error instanceof Error) say(`${error.stack}\n`);
  if (error instanceof UsageError) {
    say(`${PROGRAM}: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RuntimeError) {
    say(`${PROGRAM}: ${error.message}\n`);
    return 1;
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  say(`${PROGRAM}: ${describe(error).split('\n')[0]}${code ? ` (${code})` : ''}${process.env.DEBUG ? '' : ' (set DEBUG=1 for details)'}\n`);
  return 1;
}

let finished = false;
// Node is about to exit with nothing left to wait for, yet the run has not ended:
// a promise that never settles (a filter's, usually) holds messages that would be lost silently.
process.on('beforeExit', () => {
  if (finished) return;
  process.stderr.write(`${PROGRAM}: stopped with messages still in the chain: a filter or output returned a promise that never settles\n`);
  process.exit(1);
});
/** The chain once built: an exception from a filter's own timer or callback becomes its error record. */
let running: Chain | undefined;
/** Such exceptions while the chain is being built (a module's timer as it loads): reported once it is. */
const early: Array<[filter: string, error: unknown]> = [];
const uncaught = (error: unknown) => {
  const filter = filterScope.getStore();
  if (filter === undefined) process.exit(report(error));
  else if (running) running.filterThrew(filter, error);
  else early.push([filter, error]);
};
process.on('uncaughtException', uncaught);
process.on('unhandledRejection', uncaught);
main(process.argv.slice(2)).then(
  (code) => {
    finished = true;
    process.exit(code);
  },
  (error: unknown) => {
    finished = true;
    process.exit(report(error));
  },
);
