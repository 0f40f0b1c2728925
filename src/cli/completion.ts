// Shell completion through yargs: `message-passing completion bash|zsh` prints
// yargs's script; the script runs `message-passing --get-yargs-completions WORD...`
// at each TAB, and yargs hands the words to candidates() below.
import { flagNamed, parser, SHELLS } from './args.js';
import { flags, type FlagSpec } from './flags.js';
import { registry, type RegistryEntry } from './registry.js';

const PROGRAM = 'message-passing';

/**
 * yargs's completion script for `shell`, calling `message-passing` from PATH.
 * The answers come already matched to the word being completed, in any case
 * (`--input std` gives STDIN), and yargs's scripts would match them again,
 * case-sensitively. So three edits: its bash script passes the answers through
 * compgen with no word (which also serves `--input=st`, which bash splits at `=`
 * into the words `=` and `st`), and only the words up to the cursor, as zsh's
 * does through COMP_CWORD; its zsh script has compadd match in any case (-M).
 * The Installation line names the shell.
 */
export function completionScript(shell: string): string {
  if (!(SHELLS as readonly string[]).includes(shell)) throw new Error(`completion: unknown shell '${shell}'`);
  // yargs picks its template from $SHELL (zsh, else bash) when the instance is made.
  const saved = { SHELL: process.env.SHELL, ZSH_NAME: process.env.ZSH_NAME };
  process.env.SHELL = `/bin/${shell}`;
  delete process.env.ZSH_NAME;
  let y;
  try {
    y = parser();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  let script = '';
  // With a callback, yargs hands over what it would print instead of printing it, and does not exit.
  y.completion('completion', false).parse(['completion'], {}, (_error, _argv, output) => {
    script = output;
  });
  const edits: Array<[string, string]> = [[`${PROGRAM} completion >>`, `${PROGRAM} completion ${shell} >>`]];
  if (shell === 'bash') {
    edits.push(['args=("${COMP_WORDS[@]}")', 'args=("${COMP_WORDS[@]:0:COMP_CWORD+1}")']);
    edits.push([`compgen -W "$( printf '%q ' "\${type_list[@]}" )" -- "\${cur_word}"`, `compgen -W "$( printf '%q ' "\${type_list[@]}" )" --`]);
  } else {
    // compadd -M: match in any case, and - to _ (--input-o gives --input_options).
    edits.push(["_describe 'values' reply", "_describe 'values' reply -M 'm:{a-zA-Z-}={A-Za-z_}'"]);
  }
  for (const [from, to] of edits) {
    if (!script.includes(from)) throw new Error(`completion: yargs's ${shell} script has changed: no ${JSON.stringify(from)}`);
    script = script.replaceAll(from, to);
  }
  return script.endsWith('\n') ? script : `${script}\n`;
}

/**
 * The answers to `--get-yargs-completions WORD...`: the words of the line as the
 * scripts pass them (the program's name first, which may be left out), the last
 * one the word being completed.
 */
export async function complete(words: readonly string[], shell = 'bash'): Promise<string[]> {
  // zsh's script passes every word of the line and the cursor's place in COMP_CWORD.
  const cursor = Number(process.env.COMP_CWORD);
  const line = Number.isInteger(cursor) && cursor >= 0 && cursor < words.length ? words.slice(0, cursor + 1) : [...words];
  if (line.length === 0) line.push('');
  const current = line.at(-1)!;
  const before = line.slice(0, -1);
  if (before.length && !before[0]!.startsWith('-') && before[0] !== 'completion') before.shift();
  const y = parser().completion('completion', false, () => candidates(before, current, shell === 'zsh'));
  return [...(await y.getCompletion(line))];
}

const roleOf = (spec: FlagSpec | undefined): RegistryEntry['role'] | 'any' | undefined =>
  spec?.kind === 'plugin' ? spec.role : spec?.name === 'help' ? 'any' : undefined;

/** Plugin names of a role that start with `typed`, in any case; an alias only when it matches and its name does not. */
function pluginNames(role: RegistryEntry['role'] | 'any', typed: string): string[] {
  const wanted = typed.toLowerCase();
  const starts = (name: string) => name.toLowerCase().startsWith(wanted);
  const names = new Set<string>();
  for (const entry of registry) {
    if (role !== 'any' && entry.role !== role) continue;
    if (starts(entry.name)) names.add(entry.name);
    else for (const alias of entry.aliases ?? []) if (starts(alias)) names.add(alias);
  }
  return [...names];
}

/**
 * What may follow: flag names (Perl spelling), plugin names after a flag that names
 * one (`--input std` gives STDIN; `--input=std` gives --input=STDIN), every plugin
 * after --help. Nothing for options, files and the like: the shell then offers files.
 */
export function candidates(before: readonly string[], current: string, zsh = false): string[] {
  const previous = before.at(-1);
  const flagOf = (word: string | undefined) => (word !== undefined && /^-/.test(word) ? flagNamed(word.replace(/^-+/, '')) : undefined);

  // zsh reads `name:description`: a : in a name is escaped.
  const names = (role: RegistryEntry['role'] | 'any', typed: string) => pluginNames(role, typed).map((name) => (zsh ? name.replace(/:/g, '\\:') : name));
  /** What may follow `spec`: plugin names, or its choices (--io_priority), starting with `typed` in any case. */
  const values = (spec: FlagSpec | undefined, typed: string): string[] | undefined => {
    const role = roleOf(spec);
    if (role) return names(role, typed);
    return spec?.choices?.filter((choice) => choice.startsWith(typed.toLowerCase()));
  };
  const joined = /^(--?[^=]+)=(.*)$/s.exec(current);
  if (joined) return (values(flagOf(joined[1]), joined[2]!) ?? []).map((value) => `${joined[1]}=${value}`);
  // bash splits `--input=st` into `--input`, `=`, `st`, and replaces only the part after `=`.
  if (current === '=' || previous === '=') return values(flagOf(current === '=' ? previous : before.at(-2)), current === '=' ? '' : current) ?? [];
  const spec = flagOf(previous);
  const following = values(spec, current);
  if (following) return following;
  if (spec && (spec.kind === 'options' || spec.kind === 'string' || spec.kind === 'plugin')) return [];
  if (before.length === 0 && current !== '' && 'completion'.startsWith(current)) return ['completion'];
  if (before.length === 1 && before[0] === 'completion') return SHELLS.filter((s) => s.startsWith(current));
  if (current !== '' && !current.startsWith('-')) return [];

  const typed = current.replace(/^-+/, '').replace(/-/g, '_').toLowerCase();
  const given = new Set(before.map((word) => flagOf(word.replace(/=.*$/s, ''))?.name));
  return flags
    .filter((f) => !f.hidden && (f.repeats || !given.has(f.name)) && f.name.startsWith(typed))
    .map((f) => (zsh ? `--${f.name}:${f.description}` : `--${f.name}`));
}
