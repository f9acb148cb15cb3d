/**
 * The nixfleet version every binary prints for `--version` and the CP exports as
 * `nixfleet_build_info` (kept equal to package.json's "version" by io/version.test.ts). A
 * constant rather than a read of package.json, so the bundled binaries (dist/) need no file.
 */
export const NIXFLEET_VERSION = '0.1.0';

/** `PROGRAM VERSION (node vX)`: the one-line answer to `--version`. */
export function versionLine(program: string): string {
  return `${program} ${NIXFLEET_VERSION} (node ${process.version})\n`;
}
