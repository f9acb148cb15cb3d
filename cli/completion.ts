/**
 * `nixfleet completion bash|zsh|fish`: shell completion generated from the command table (the
 * same one help, docs/cli.md and argument parsing use), so it cannot drift from the commands.
 * Completes command words, subcommands of a group, and each command's flags.
 */
import type { CommandSpec, Ctx, Outcome } from './framework.ts';
import { allFlags, done, fail } from './framework.ts';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Top-level words, and per top-level word its subcommands (for groups) or flags. */
function model(table: readonly CommandSpec[]) {
  const top = [...new Set(table.map((c) => c.name.split(' ')[0]!))];
  const subs = new Map<string, string[]>();
  for (const c of table) {
    const [g, s] = c.name.split(' ');
    if (s !== undefined) subs.set(g!, [...(subs.get(g!) ?? []), s]);
  }
  const flags = table.map((c) => ({ name: c.name, flags: [...allFlags(c).map((f) => `--${f.name}`), '--help'] }));
  return { top: [...top, 'help'], subs, flags };
}

export function completionScript(table: readonly CommandSpec[], shell: Shell): string {
  const m = model(table);
  if (shell === 'fish') {
    const lines = ['# nixfleet completion for fish (generated: nixfleet completion fish)', 'complete -c nixfleet -f'];
    lines.push(`complete -c nixfleet -n '__fish_use_subcommand' -a ${q(m.top.join(' '))}`);
    lines.push(`complete -c nixfleet -n '__fish_use_subcommand' -l version -l help`);
    for (const [g, subs] of m.subs) lines.push(`complete -c nixfleet -n '__fish_seen_subcommand_from ${g}; and not __fish_seen_subcommand_from ${subs.join(' ')}' -a ${q(subs.join(' '))}`);
    for (const c of m.flags) {
      const words = c.name.split(' ');
      const cond = words.length === 1 ? `__fish_seen_subcommand_from ${words[0]}` : `__fish_seen_subcommand_from ${words[0]}; and __fish_seen_subcommand_from ${words[1]}`;
      lines.push(`complete -c nixfleet -n ${q(cond)} ${c.flags.map((f) => `-l ${f.slice(2)}`).join(' ')}`);
    }
    return lines.join('\n') + '\n';
  }
  // bash (zsh uses it through bashcompinit): one case per command word(s).
  const cases: string[] = [];
  for (const c of m.flags) cases.push(`    ${q(c.name)}) opts=${q(c.flags.join(' '))} ;;`);
  for (const [g, subs] of m.subs) cases.push(`    ${q(g)}) opts=${q(subs.join(' '))} ;;`);
  const bash = `_nixfleet() {
  local cur=\${COMP_WORDS[COMP_CWORD]} key="" opts
  if [ "$COMP_CWORD" -ge 3 ]; then key="\${COMP_WORDS[1]} \${COMP_WORDS[2]}"; fi
  case "$key" in
${m.flags.filter((c) => c.name.includes(' ')).map((c) => `    ${q(c.name)}) COMPREPLY=( $(compgen -W ${q(c.flags.join(' '))} -- "$cur") ); return ;;`).join('\n')}
  esac
  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=( $(compgen -W ${q([...m.top, '--help', '--version'].join(' '))} -- "$cur") ); return; fi
  case "\${COMP_WORDS[1]}" in
${cases.join('\n')}
    *) opts="" ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -o default -F _nixfleet nixfleet
`;
  if (shell === 'zsh') return `#compdef nixfleet\n# nixfleet completion for zsh (generated: nixfleet completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash}`;
  return `# nixfleet completion for bash (generated: nixfleet completion bash)\n${bash}`;
}

export function completionCommand(table: () => readonly CommandSpec[]) {
  return async (ctx: Ctx): Promise<Outcome> => {
    const shell = ctx.args['SHELL'];
    if (!(SHELLS as readonly string[]).includes(shell ?? '')) return fail('USAGE', `SHELL must be one of ${SHELLS.join(', ')}`);
    ctx.io.stdout(completionScript(table(), shell as Shell));
    return done;
  };
}
