/** `--help` texts of `nixfleet-release` and its subcommands (SPEC §3), keyed by command name. */
export const HELP: Record<string, string> = {
  main: `nixfleet-release — resolve, canonicalise, sign and verify nixfleet release artefacts

Usage: nixfleet-release <command> [options]
       nixfleet-release --help | --version

Commands:
  init          start a fleet repository: trust.json, signed empty revocations.json, fleet.json
  keygen        create a release signing key
  canonicalize  print the JCS (RFC 8785) form of a JSON file
  resolve       turn a fleet description into fleet.resolved.json
  sign          stamp, canonicalise and sign fleet.resolved.json / revocations.json
  verify        verify a signed artefact as the control plane and agents do
  push          copy every host's closure to the binary cache, signed with the cache key

Run 'nixfleet-release <command> --help' for the options of a command.
Exit codes: 0 ok, 1 invalid input, 2 hook or I/O failure.
`,
  init: `Usage: nixfleet-release init --dir DIR [--key FILE | --public-key B64 [--algorithm ALG]]
                        [--host NAME[,NAME…]]… [--cache-key NAME:B64]… [--now ISO]

Writes the files a fleet repository starts from into DIR, refusing to overwrite any of them:
  DIR/trust.json            the release public key as ciReleaseKey.current (schemas/trust.schema.json)
  DIR/revocations.json{,.sig}  an empty revocation list, signed (schemas/revocations.schema.json)
  DIR/fleet.json            a starter fleet description: channel "stable", a canary wave then
                            the rest, the --host names on it (schemas/fleet.schema.json)
  DIR/release.key           only without --key / --public-key: a fresh release private key
                            (PKCS#8 PEM, mode 0600) — move it to CI's secret store

  --key FILE         an existing release private key (from 'keygen'): its public key goes to
                     trust.json and it signs revocations.json
  --public-key B64   only the public key (the private one lives in a token): revocations.json
                     is written unsigned; sign it in CI with 'sign --revocations'
  --algorithm ALG    ed25519 (default) or ecdsa-p256, for --public-key or a generated key
  --host NAMES       hosts of the starter fleet (repeatable, comma-separated)
  --cache-key KEY    a binary-cache public key (nix key convert-secret-to-public) for trust.json's
                     cacheKeys: agents realise only closures it signed (repeatable)
  --now ISO          meta.signedAt of revocations.json (default: now)
`,
  keygen: `Usage: nixfleet-release keygen --out FILE [--algorithm ed25519|ecdsa-p256] [--force]

Writes a PKCS#8 PEM private key to FILE (mode 0600) and prints the public key (base64 of the raw
32 bytes for ed25519, of X‖Y for ecdsa-p256) on stdout: put it in trust.json as
ciReleaseKey.current.public. Refuses to overwrite FILE unless --force.
`,
  canonicalize: `Usage: nixfleet-release canonicalize [FILE]

Prints the JCS (RFC 8785) serialisation of FILE (or stdin when FILE is absent or "-") on stdout,
with no trailing newline. Refuses duplicate keys, lone surrogates and numbers JSON cannot carry.
`,
  resolve: `Usage: nixfleet-release resolve --fleet FLEET.json [--fleet MORE.json …] [--out FILE]
                                [--compliance-report REPORT.json]

Turns a fleet description into fleet.resolved.json: merges the files, fills defaults, resolves
wave selectors to host lists and checks every invariant of SPEC §3.1 (see release/README.md).
Writes canonical JSON with meta.signedAt = null to FILE (atomically) or stdout. Warnings go to
stderr; an error prints "CODE: message" on stderr and exits 1.

--compliance-report: the static compliance report of the fleet's nixosConfigurations
(nix eval --json of lib.compliance.staticReport). A failing static control of a host whose
channel is in enforce mode refuses the resolve (COMPLIANCE_STATIC_FAILED, naming host, control
and the value seen); in permissive mode it is a warning and is recorded in the artefact
(compliance.staticFailures).
`,
  sign: `Usage: nixfleet-release sign [--in fleet.resolved.json] [--revocations revocations.json]
                        (--key FILE | --sign-cmd CMD [--algorithm ALG] [--public-key B64])
                        [--closures MAP.json] [--ci-commit SHA] [--now ISO]
                        [--reuse-unchanged-signature] --out-dir DIR

Injects closure hashes (MAP.json: {"host": "<store basename or /nix/store path>"}), stamps
meta.signedAt (--now, default the current time), meta.ciCommit and meta.signatureAlgorithm,
canonicalises (JCS), signs, and writes DIR/fleet.resolved.json and DIR/fleet.resolved.json.sig
(raw 64 bytes) atomically; the same for --revocations (DIR/revocations.json{,.sig}).

  --key FILE           PKCS#8 PEM private key (from 'keygen')
  --sign-cmd CMD       run CMD with sh -c; it reads the canonical bytes from the file named by
                       $NIXFLEET_INPUT and writes the raw 64-byte signature to $NIXFLEET_OUTPUT
  --algorithm ALG      algorithm of the --sign-cmd key (ed25519 | ecdsa-p256; default ed25519)
  --public-key B64     with --sign-cmd: check the produced signature with this key
  --reuse-unchanged-signature
                       if DIR already holds a valid signed artefact that differs only in
                       meta.signedAt and is younger than the smallest signingIntervalMinutes
                       (60 for revocations), keep it byte for byte instead of re-signing
`,
  verify: `Usage: nixfleet-release verify --artifact FILE [--signature FILE.sig]
                          (--public-key B64 [--algorithm ALG] | --trust trust.json)
                          [--now ISO] [--kind fleet|revocations|index] [--freshness-window MINUTES]
                          [--last-signed-at ISO --last-sha256 HEX] [--max-bytes N]

Verifies exactly as the control plane and agents do (SPEC §2.3). Exit 0 with a one-line summary
on stdout when valid; exit 1 with "CODE: message" on stderr otherwise (codes: TOO_LARGE,
PARSE_ERROR, DUPLICATE_KEY, NOT_CANONICALIZABLE, BAD_SIGNATURE, NO_ACTIVE_KEY, SCHEMA_VERSION,
SCHEMA_INVALID, NOT_SIGNED, REJECTED_BEFORE, STALE, FUTURE_DATED, ROLLBACK, EQUIVOCATION).
--signature defaults to FILE.sig; --kind defaults to revocations when the file name starts with
"revocations", to index for "fleet.index.json" (the signed slice index: same trust slots,
freshness, rollback and equivocation rules; its window is the one it carries), else fleet. The algorithm of --public-key is inferred from its length.
`,
};

/** True when a subcommand's arguments ask for its help. */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

