import type { OptionSpec } from './options.js';

/** The option every line input shares, so one huge line cannot eat memory. */
export const maxLineLengthOption = {
  type: 'size',
  min: 1,
  default: '1MiB',
  description: 'Longest line accepted; a longer line goes to the error output as an over-long record.',
} as const satisfies OptionSpec;
