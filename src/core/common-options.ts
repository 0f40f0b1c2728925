import type { OptionSpec } from './options.js';

/** The option every line input shares, so one huge line cannot eat memory. */
export const maxLineLengthOption = {
  type: 'integer',
  min: 1,
  default: 1_048_576,
  description: 'Longest line accepted, in bytes; a longer line goes to the error output as an over-long record.',
} as const satisfies OptionSpec;
