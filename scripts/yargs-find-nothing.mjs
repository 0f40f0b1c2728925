// Stands in for escalade/sync inside dist/message-passing.cjs (see
// scripts/bundle.mjs and scripts/yargs-unused.mjs): yargs looks up package.json
// from the current folder to / as it is made, for a version and settings it is
// not asked for (src/cli/args.ts turns its version off); nothing is found.
export default function findNothing() {
  return undefined;
}
