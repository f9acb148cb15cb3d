/**
 * Forking TypeScript helpers for the benchmarks: a child process running a `.ts` module through
 * tsx, with a typed request/response exchange over the IPC channel.
 */
import { fork, type ChildProcess } from 'node:child_process';

export type Forked = {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Send one request and wait for the child's one reply (`{ok, value}` or `{ok: false, error}`). */
  call<T>(msg: unknown, timeoutMs?: number): Promise<T>;
  /** Ask the child to exit, then kill it if it has not within a second. */
  close(): Promise<void>;
};

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** Fork `file` (a .ts module that calls {@link serveChild}) with tsx's loader. */
export function forkTs(file: string, opts: { execArgv?: string[]; env?: NodeJS.ProcessEnv; execPath?: string } = {}): Forked {
  const child = fork(file, [], {
    ...(opts.execPath !== undefined ? { execPath: opts.execPath } : {}),
    execArgv: ['--import', 'tsx', ...(opts.execArgv ?? [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: opts.env ?? process.env,
  });
  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    if (p === undefined) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.error));
  });
  child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`child ${file} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    child,
    pid: child.pid!,
    call<T>(msg: unknown, timeoutMs = 300_000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`child ${file}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, msg });
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** In the child: answer each request with `handler`; exit when the parent disconnects. */
export function serveChild(handler: (msg: unknown) => Promise<unknown>): void {
  process.on('message', (m: { id: number; msg: unknown }) => {
    handler(m.msg).then(
      (value) => process.send!({ id: m.id, ok: true, value }),
      (e: unknown) => process.send!({ id: m.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
