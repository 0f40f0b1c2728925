import { defineFilter, one } from '../core/plugin.js';
import { fieldValue } from '../core/time.js';

/** The value a field is compared as: strings, numbers and booleans as text; anything else never matches. */
function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return undefined;
}

export default defineFilter({
  summary: "Pass on only the messages whose field matches a value or a regular expression (Perl's Filter::Key).",
  description:
    'The field at `key` (a dotted path: "a.b.c" is {a: {b: {c: ...}}}, or a key written with dots) is compared with `match`: ' +
    'with match_type eq its text must equal match; with regex, match is a regular expression that must match somewhere in it ' +
    '(anchor it with ^ and $ for the whole value). Strings, numbers and booleans are compared as text; a missing field, ' +
    'null, an object or a list never matches, and neither does a string message (--decoder Null), which has no fields. ' +
    'Messages that do not match (or, with negate, that do) are dropped on purpose and counted as dropped in --stats. ' +
    "Unlike Perl's, an empty string and 0 can match.",
  examples: [
    `message-passing --filter Key --filter_options '{key: "level", match: "error"}'`,
    `message-passing --filter Key --filter_options '{key: "http.status", match: "^5\\\\d\\\\d$", match_type: "regex"}'`,
    `message-passing --filter Key --filter_options '{key: "host", match: "test-.*", match_type: "regex", negate: true}'`,
  ],
  options: {
    key: { type: 'string', required: true, description: 'The field to look at, a dotted path such as "a.b.c".' },
    match: { type: 'string', required: true, description: 'The value the field must have (eq), or a regular expression it must match (regex).' },
    match_type: { type: 'string', choices: ['eq', 'regex'], default: 'eq', description: 'How match is compared: equal text, or a regular expression.' },
    negate: { type: 'boolean', default: false, description: 'Pass on the messages that do NOT match instead.' },
  },
  check(o) {
    if (o.match_type !== 'regex') return undefined;
    try {
      new RegExp(o.match);
    } catch (error) {
      const reason = error instanceof Error ? error.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(error);
      return `option 'match' ${JSON.stringify(o.match)} is not a valid regular expression: ${reason}`;
    }
    return undefined;
  },
  create(o) {
    const { key, match, negate } = o;
    let matches: (text: string) => boolean;
    if (o.match_type === 'regex') {
      const regex = new RegExp(match);
      matches = (text) => regex.test(text);
    } else matches = (text) => text === match;
    return {
      filter(message) {
        const text = scalarText(fieldValue(message, key));
        const hit = text !== undefined && matches(text);
        return hit !== negate ? one(message) : undefined;
      },
    };
  },
});
