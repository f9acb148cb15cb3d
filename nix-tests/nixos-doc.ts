/**
 * Generates the option reference of docs/nixos.md from modules/options-*.nix, so the doc cannot
 * drift from the modules (nix-tests/nixos-doc.test.ts fails when the committed doc differs).
 *
 *   npx tsx nix-tests/nixos-doc.ts --write   # rewrite the generated part of docs/nixos.md
 *   npx tsx nix-tests/nixos-doc.ts --check   # exit 1 if it is out of date
 *
 * Only the text between the BEGIN / END markers is generated; the rest of the file is prose.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeType, leaves, loadOptions, toNix, type ModuleName, type OptionSpec } from './options.ts';
import { ROOT } from './nix.ts';

export const DOC = join(ROOT, 'docs/nixos.md');
export const BEGIN = '<!-- BEGIN GENERATED OPTIONS: npx tsx nix-tests/nixos-doc.ts --write -->';
export const END = '<!-- END GENERATED OPTIONS -->';

const oneParagraph = (s: string): string => s.trim().replace(/\s*\n\s*/g, ' ');

function renderOption(prefix: string, name: string, s: OptionSpec): string {
  const lines = [`#### \`${prefix}.${name}\``, '', oneParagraph(s.description), '', `- Type: ${describeType(s.type)}`];
  if ('default' in s) lines.push(`- Default: \`${toNix(s.default)}\``);
  else if (s.defaultText !== undefined) lines.push(`- Default: \`${s.defaultText}\`${s.moduleDefault ? ' (set by the module)' : ''}`);
  else lines.push('- Default: none (required)');
  if ('example' in s) lines.push(`- Example: \`${toNix(s.example)}\``);
  return lines.join('\n');
}

function defaultCell(s: OptionSpec): string {
  if ('default' in s) return `\`${toNix(s.default)}\``;
  if (s.moduleDefault) return 'set by the module';
  if (s.defaultText !== undefined) return `\`${s.defaultText}\``;
  return 'required';
}

function renderModule(name: ModuleName, title: string, intro: string): string {
  const opts = loadOptions(name);
  const prefix = `services.nixfleet-${name}`;
  const all = [...leaves(opts.service), ...leaves(opts.settings)];
  const table = ['| option | type | default |', '| --- | --- | --- |', ...all.map(([k, s]) => `| \`${k}\` | ${describeType(s.type)} | ${defaultCell(s)} |`)].join('\n');
  return [
    `### ${title}`,
    intro,
    table,
    ...leaves(opts.service).map(([k, s]) => renderOption(prefix, k, s)),
    `The options below are ${name === 'agent' ? 'the agent' : 'the control plane'}'s configuration keys, written to its JSON config file.`,
    ...leaves(opts.settings).map(([k, s]) => renderOption(prefix, k, s)),
  ].join('\n\n');
}

/** The generated part of docs/nixos.md (without the markers). */
export function renderOptionsSection(): string {
  return [
    renderModule(
      'agent',
      '`services.nixfleet-agent` (NixOS: `nixosModules.agent`; nix-darwin: `darwinModules.agent`)',
      'Source: [`modules/options-agent.nix`](../modules/options-agent.nix); config keys of [`agent/config.ts`](../agent/config.ts).',
    ),
    renderModule(
      'control-plane',
      '`services.nixfleet-control-plane` (NixOS: `nixosModules.control-plane`)',
      'Source: [`modules/options-control-plane.nix`](../modules/options-control-plane.nix); config keys of [`control-plane/config.ts`](../control-plane/config.ts).',
    ),
  ].join('\n\n').trim();
}

/** docs/nixos.md with its generated part replaced. */
export function withGenerated(doc: string): string {
  const b = doc.indexOf(BEGIN);
  const e = doc.indexOf(END);
  if (b === -1 || e === -1 || e < b) throw new Error(`docs/nixos.md: markers ${BEGIN} … ${END} not found`);
  return `${doc.slice(0, b + BEGIN.length)}\n\n${renderOptionsSection()}\n\n${doc.slice(e)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const current = readFileSync(DOC, 'utf8');
  const next = withGenerated(current);
  if (process.argv.includes('--write')) {
    writeFileSync(DOC, next);
  } else if (process.argv.includes('--check')) {
    if (next !== current) {
      process.stderr.write('docs/nixos.md is out of date: run npx tsx nix-tests/nixos-doc.ts --write\n');
      process.exitCode = 1;
    }
  } else {
    process.stdout.write(renderOptionsSection() + '\n');
  }
}
