// Stands in for the npm package y18n inside dist/message-passing.cjs (see
// scripts/bundle.mjs): yargs's own strings stay the English ones written in its
// source, and no locale file is ever looked for, so the bundle needs nothing
// from node_modules. (yargs prints none of them anyway: its help, version and
// failure output are turned off in src/cli/args.ts.) Same calls as y18n's.
import { format } from 'node:util';

export default function englishOnly() {
  let locale = 'en';
  /** Replacements given through updateLocale(), by locale. */
  const replaced = { en: {} };
  const text = (key) => replaced[locale]?.[key] ?? key;
  return {
    __: (key, ...args) => format(text(key), ...args.filter((a) => typeof a !== 'function')),
    __n: (singular, plural, quantity, ...args) => {
      const chosen = text(quantity === 1 ? singular : plural);
      return format(chosen, ...(chosen.includes('%d') ? [quantity] : []), ...args.filter((a) => typeof a !== 'function'));
    },
    setLocale: (name) => {
      locale = name;
    },
    getLocale: () => locale,
    updateLocale: (strings) => {
      replaced[locale] = { ...replaced[locale], ...strings };
    },
  };
}
