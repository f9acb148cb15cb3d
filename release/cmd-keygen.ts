/** `nixfleet-release keygen` (SPEC §3): a PKCS#8 PEM release key (mode 0600) and its public key. */
import { existsSync } from 'node:fs';
import { generateKeyPair } from '../protocol/crypto.ts';
import { toPkcs8Pem } from '../io/keyfile.ts';
import { algorithmFlag, args, EXIT_OK, InputError, need, writeFileAtomic, type CliIo } from './cli-common.ts';

/** Writes the private key to `--out` and prints the base64 public key on stdout. */
export function cmdKeygen(argv: string[], io: CliIo): number {
  const { values } = args(argv, { out: { type: 'string' }, algorithm: { type: 'string' }, force: { type: 'boolean' } });
  const out = need(values.out as string | undefined, '--out');
  const algorithm = algorithmFlag(values.algorithm as string | undefined, 'ed25519');
  if (existsSync(out) && values.force !== true) throw new InputError(`${out} already exists; refusing to overwrite a key (use --force)`);
  const kp = generateKeyPair(algorithm);
  writeFileAtomic(out, toPkcs8Pem({ algorithm, secretKey: kp.secretKey }), 0o600);
  io.stdout(kp.publicKeyB64 + '\n');
  return EXIT_OK;
}
