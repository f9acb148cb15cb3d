/**
 * Model-based test of magic rollback (SPEC §6): the pure machine + the real effect interpreter
 * (`drive.ts`) over the fake backend, an in-memory store and a virtual clock. fast-check picks
 * any order of dispatches, time jumps, faults (realise / switch / probes / confirm 410 or network
 * error) and kill -9 at any effect, with restarts from the persisted record.
 *
 * Laws:
 * - never on the new closure unconfirmed past the deadline (while the agent is up);
 * - a quarantined closure is never running, and never activated again within 24 h;
 * - in the end the host is on the new closure confirmed, or on the previous closure with the new
 *   one quarantined (or untouched, when it never got as far as a switch; or prepared for the next
 *   boot when the kernel differs) — and no pending record is left behind.
 * The CP's rollback-and-halt instruction is part of the command set too.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { drive, type DriveDeps } from './drive.ts';
import { Crash, FakeBackend, MemoryStore, type FakeCall } from '../fixtures/agent-fake-backend.ts';
import { INITIAL_STATE, instructedRollback, recover, reconfirm, step, type ConfirmResult, type Job, type MachineConfig, type MachineState } from './machine.ts';

const P = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-prev';
const N_HASH = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-new';
const N = `/nix/store/${N_HASH}`;
const CFG: MachineConfig = { confirmDeadlineSecs: 120, quarantineHours: 24, retryIntervalSecs: 5 };
const CP_DEADLINE_SECS = 150;

type Faults = {
  realiseFails: boolean;
  switchMode: 'ok' | 'fail' | 'fail-after-activating';
  probesOk: boolean;
  cpMode: 'ok' | 'gone' | 'error';
  switchSecs: number;
  /** The new closure's kernel differs: `boot` + deferred instead of a live switch. */
  inhibit: boolean;
};

class World {
  now = Date.UTC(2026, 0, 1);
  backend = new FakeBackend(P);
  store = new MemoryStore();
  state: MachineState | null = INITIAL_STATE;
  faults: Faults = { realiseFails: false, switchMode: 'ok', probesOk: true, cpMode: 'ok', switchSecs: 1, inhibit: false };
  cpDeadlineMs: number | null = null;
  crashIn: number | null = null;
  quarantinedAt: number | null = null;
  activationsOfNAfterQuarantine = 0;
  log: string[] = [];

  constructor() {
    const hook = (call: FakeCall) => {
      this.tickCrash(call);
      if (call === 'activate') {
        this.now += this.faults.switchSecs * 1000;
        if (this.quarantinedAt !== null && this.now - this.quarantinedAt < 24 * 3600_000) this.checkNotQuarantined();
      }
    };
    this.backend.hook = hook;
    this.store.hook = hook;
  }

  private checkNotQuarantined(): void {
    // Called just before an activation; the activation of N after quarantine is a law violation,
    // counted here and asserted by the caller.
    const last = this.pendingTarget();
    if (last === N) this.activationsOfNAfterQuarantine += 1;
  }
  private pendingTarget(): string | null {
    return this.store.pending?.closurePath ?? null;
  }

  tickCrash(at: string): void {
    if (this.crashIn === null) return;
    if (this.crashIn === 0) {
      this.crashIn = null;
      throw new Crash(at);
    }
    this.crashIn -= 1;
  }

  deps(): DriveDeps {
    return {
      backend: this.backend,
      store: this.store,
      now: () => this.now,
      cfg: CFG,
      runProbes: async () => {
        this.tickCrash('probes');
        return { ok: this.faults.probesOk, failures: this.faults.probesOk ? [] : ['toy probe failed'] };
      },
      confirm: async (): Promise<{ result: ConfirmResult; message: string }> => {
        this.tickCrash('confirm');
        if (this.faults.cpMode === 'error') return { result: 'error', message: 'connection refused' };
        if (this.faults.cpMode === 'gone' || this.cpDeadlineMs === null || this.now >= this.cpDeadlineMs) return { result: 'gone', message: '410' };
        return { result: 'ok', message: '204' };
      },
      report: async (r) => {
        this.log.push(`report ${r.event}`);
      },
      saveConfirmed: (rolloutId, closureHash, atMs) => {
        this.tickCrash('save-confirmed');
        this.store.confirmed = { record: { hostname: 'h', rolloutId, closureHash, confirmedAt: new Date(atMs).toISOString() }, signature: 'x' };
      },
    };
  }

  async run(fn: (s: MachineState) => ReturnType<typeof step>): Promise<void> {
    if (this.state === null) return;
    try {
      const r = await drive(this.deps(), fn(this.state));
      this.state = r.state;
    } catch (e) {
      if (!(e instanceof Crash)) throw e;
      this.log.push(e.message);
      this.state = null;
    }
    this.crashIn = null;
    const q = this.store.quarantine.find((e) => e.closureHash === N_HASH);
    if (q !== undefined && this.quarantinedAt === null) this.quarantinedAt = q.sinceMs;
  }

  async dispatch(crashIn: number | null): Promise<void> {
    if (this.state === null) return;
    this.cpDeadlineMs ??= this.now + CP_DEADLINE_SECS * 1000;
    const job: Job = { rolloutId: 'web@1', closureHash: N_HASH, closurePath: N, cpDeadlineMs: this.cpDeadlineMs, leaving: false };
    this.crashIn = crashIn;
    // As the shell does: a target that already runs is only re-confirmed.
    if (this.backend.runningPath === N) await this.run((s) => reconfirm(s, job));
    else await this.run((s) => step(s, { kind: 'target', job }, this.now, CFG));
  }

  async advance(secs: number, crashIn: number | null): Promise<void> {
    this.now += secs * 1000;
    if (this.state === null) return;
    this.crashIn = crashIn;
    await this.run((s) => step(s, { kind: 'tick' }, this.now, CFG));
  }

  /** The CP's rollback-and-halt instruction for the new closure (the shell passes what runs). */
  async instruct(crashIn: number | null): Promise<void> {
    if (this.state === null) return;
    this.crashIn = crashIn;
    await this.run((s) => instructedRollback(s, { rolloutId: 'web@1', closureHash: N_HASH, reason: 'health gate' }, this.backend.runningPath, this.now));
  }

  async restart(crashIn: number | null): Promise<void> {
    if (this.state !== null) return;
    this.state = INITIAL_STATE;
    this.crashIn = crashIn;
    const persisted = { quarantine: this.store.loadQuarantine(), ...this.store.loadOutcome() };
    const confirmed = this.store.confirmed?.record ?? null;
    await this.run(() => recover(persisted, this.store.loadPending(), this.backend.runningPath, this.now, confirmed));
  }

  confirmedN(): boolean {
    return this.store.confirmed?.record.closureHash === N_HASH;
  }
  quarantinedN(): boolean {
    return this.store.quarantine.some((q) => q.closureHash === N_HASH && q.untilMs > this.now);
  }

  /** Laws that hold whenever the agent is up and has settled. */
  checkInvariants(): void {
    if (this.state === null) return;
    if (this.backend.runningPath === N && !this.confirmedN()) {
      const p = this.store.pending;
      assert.ok(p !== null && p.closurePath === N, `running N unconfirmed without a pending record (${this.log.join(' | ')})`);
      assert.ok(this.now < p!.deadlineMs || p!.phase === 'rolling-back', `running N unconfirmed past the deadline (${this.log.join(' | ')})`);
    }
    if (this.quarantinedN()) {
      assert.is(this.backend.runningPath, P, 'quarantined closure must not run');
      assert.is(this.backend.profileCurrent, P, 'profile must be back on the previous closure');
    }
    assert.is(this.activationsOfNAfterQuarantine, 0, 'a quarantined closure was activated again within 24 h');
  }

  async finish(): Promise<void> {
    this.crashIn = null;
    if (this.state === null) await this.restart(null);
    for (let i = 0; i < 4; i++) await this.advance(CFG.confirmDeadlineSecs + CP_DEADLINE_SECS, null);
  }
}

type Model = Record<string, never>;
const crashArb = fc.option(fc.nat({ max: 9 }), { freq: 3 });

class Dispatch implements fc.AsyncCommand<Model, World> {
  constructor(readonly crashIn: number | null) {}
  check = () => true;
  async run(_m: Model, w: World): Promise<void> {
    await w.dispatch(this.crashIn);
    w.checkInvariants();
  }
  toString = () => `dispatch(crash=${this.crashIn})`;
}
class Advance implements fc.AsyncCommand<Model, World> {
  constructor(
    readonly secs: number,
    readonly crashIn: number | null,
  ) {}
  check = () => true;
  async run(_m: Model, w: World): Promise<void> {
    await w.advance(this.secs, this.crashIn);
    w.checkInvariants();
  }
  toString = () => `advance(${this.secs}s, crash=${this.crashIn})`;
}
class Restart implements fc.AsyncCommand<Model, World> {
  constructor(readonly crashIn: number | null) {}
  check = () => true;
  async run(_m: Model, w: World): Promise<void> {
    await w.restart(this.crashIn);
    w.checkInvariants();
  }
  toString = () => `restart(crash=${this.crashIn})`;
}
class Instruct implements fc.AsyncCommand<Model, World> {
  constructor(readonly crashIn: number | null) {}
  check = () => true;
  async run(_m: Model, w: World): Promise<void> {
    await w.instruct(this.crashIn);
    w.checkInvariants();
  }
  toString = () => `instruct-rollback(crash=${this.crashIn})`;
}
class SetFaults implements fc.AsyncCommand<Model, World> {
  constructor(readonly faults: Faults) {}
  check = () => true;
  async run(_m: Model, w: World): Promise<void> {
    w.faults = this.faults;
    w.backend.realiseError = this.faults.realiseFails ? { code: 'CACHE_SIGNATURE', message: 'untrusted' } : null;
    w.backend.switchMode = this.faults.switchMode;
    if (this.faults.inhibit) w.backend.inhibitorsOf.set(N, ['kernel']);
    else w.backend.inhibitorsOf.delete(N);
  }
  toString = () => `faults(${JSON.stringify(this.faults)})`;
}

const faultsArb: fc.Arbitrary<Faults> = fc.record({
  realiseFails: fc.boolean(),
  switchMode: fc.constantFrom('ok', 'ok', 'fail', 'fail-after-activating'),
  probesOk: fc.boolean(),
  cpMode: fc.constantFrom('ok', 'ok', 'gone', 'error'),
  switchSecs: fc.constantFrom(1, 30, 200),
  inhibit: fc.constantFrom(false, false, false, true),
});

const commands = fc.commands(
  [
    crashArb.map((c) => new Dispatch(c)),
    fc.tuple(fc.constantFrom(1, 4, 30, 119, 121, 400, 25 * 3600), crashArb).map(([s, c]) => new Advance(s, c)),
    crashArb.map((c) => new Restart(c)),
    crashArb.map((c) => new Instruct(c)),
    faultsArb.map((f) => new SetFaults(f)),
  ],
  { maxCommands: 25 },
);

const test = suite('agent machine (model-based)');

test('any order of successes, failures, crashes and timeouts ends confirmed, or rolled back and quarantined', async () => {
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      const w = new World();
      await fc.asyncModelRun(() => ({ model: {} as Model, real: w }), cmds);
      await w.finish();
      w.checkInvariants();
      assert.is(w.store.pending, null, 'no activation record left half-done');
      const onNew = w.backend.runningPath === N && w.confirmedN();
      const onPrevQuarantined = w.backend.runningPath === P && w.backend.profileCurrent === P && w.store.quarantine.some((q) => q.closureHash === N_HASH);
      const untouched = w.backend.runningPath === P && w.backend.profileCurrent === P && !w.backend.activations.some((a) => a.startsWith(N));
      // Kernel differs: prepared for the next boot (profile = new closure), nothing to confirm yet.
      const deferred = w.backend.runningPath === P && w.backend.profileCurrent === N && w.state?.deferred === N_HASH && w.backend.activations.at(-1) === `${N} boot`;
      assert.ok(onNew || onPrevQuarantined || untouched || deferred, `ended on ${w.backend.runningPath} (profile ${w.backend.profileCurrent}); ${w.log.join(' | ')}`);
      if (onPrevQuarantined && w.backend.activations.some((a) => a.startsWith(N))) {
        // The previous closure's own activation ran after the new one's.
        const lastN = w.backend.activations.map((a) => a.startsWith(N)).lastIndexOf(true);
        const after = w.backend.activations.slice(lastN + 1);
        assert.ok(after.includes(`${P} switch`) || after.includes(`${P} boot`), 'previous closure activation ran after the rollback');
      }
    }),
    { numRuns: Number(process.env['MODEL_RUNS'] ?? 400) },
  );
});

test('example: a failing switch rolls back, runs the previous switch and quarantines', async () => {
  const w = new World();
  w.backend.switchMode = 'fail';
  await w.dispatch(null);
  assert.is(w.backend.runningPath, P);
  assert.equal(w.backend.activations, [`${N} switch`, `${P} switch`]);
  assert.ok(w.quarantinedN());
  assert.ok(w.log.includes('report rolled-back'));
  const before = w.backend.activations.length;
  await w.dispatch(null);
  assert.is(w.backend.activations.length, before, 'quarantined closure refused on the next dispatch');
  assert.ok(w.log.includes('report closure-quarantined'));
});

test('example: no confirm possible → rollback by the deadline, not before', async () => {
  const w = new World();
  w.faults.cpMode = 'error';
  await w.dispatch(null);
  assert.is(w.backend.runningPath, N);
  await w.advance(60, null);
  assert.is(w.backend.runningPath, N, 'still inside the confirm window');
  await w.advance(61, null);
  assert.is(w.backend.runningPath, P);
  assert.ok(w.quarantinedN());
});

test('example: kill -9 after the switch; restart in time confirms, restart late rolls back', async () => {
  for (const late of [false, true]) {
    const w = new World();
    w.faults.cpMode = 'error'; // the agent is killed before it could confirm
    await w.dispatch(null);
    w.state = null; // kill -9 while waiting to confirm
    w.faults.cpMode = 'ok';
    if (late) w.now += 200_000;
    await w.restart(null);
    assert.is(w.backend.runningPath, late ? P : N);
    assert.is(w.confirmedN(), !late);
    assert.is(w.quarantinedN(), late);
    assert.is(w.store.pending, null);
  }
});

test('regression (seed -1234255469): an old confirm of the same rollout/closure does not confirm a re-dispatch killed before its switch', async () => {
  const w = new World();
  await w.dispatch(null);
  assert.ok(w.confirmedN());
  await w.instruct(null);
  assert.is(w.backend.runningPath, P);
  await w.advance(25 * 3600, null); // the quarantine has expired
  await w.dispatch(5); // realise, inspect, running, save-pending, set-profile: killed at the switch
  assert.is(w.state, null);
  await w.restart(null);
  assert.is(w.store.pending, null);
  assert.is(w.backend.profileCurrent, P, 'the half-done activation was undone, not taken as confirmed');
  assert.ok(w.quarantinedN());
});

test.run();
