/**
 * The broker's tunnels at rest: one SQLite file in WAL mode that only the daemon opens.
 * A change is acknowledged only once its transaction has committed. With `sync` "normal" (the
 * default) a commit is written to the WAL, in the kernel's hands, before it returns: it outlives
 * a SIGKILL of the daemon, and ~0.2 ms a commit keeps `broker add` under 1 ms; an OS crash or a
 * power cut may take the last commits back (the file stays consistent). "full" fsyncs the WAL at
 * each commit, which outlives those too, at 2–6 ms a commit on this project's test machine.
 *
 * The binding is node-sqlite3-wasm, the same WebAssembly build of SQLite on Node 20–26, Bun and
 * Deno (README, Dependencies). Its file layer has no shared-memory methods, so WAL runs with
 * `locking_mode = EXCLUSIVE` (SQLite then keeps the WAL index in the process's own memory), and
 * its lock is a `<file>.lock` directory that a killed process leaves behind. Whose file it is
 * is therefore decided by a flock on `<file>.owner`, which the kernel drops however the owner
 * ends: whoever holds it may remove a lock directory it finds.
 */
import { closeSync, constants, mkdirSync, openSync, rmdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { checkBrokerTunnel, type BrokerTunnel } from '../broker/tunnel.js';
import { loadNative } from '../io/native.js';

/** The part of node-sqlite3-wasm's Database this store uses. */
interface SqlDatabase {
  exec(sql: string): void;
  run(sql: string, values?: unknown[]): { changes: number };
  all(sql: string, values?: unknown[]): Array<Record<string, unknown>>;
  readonly inTransaction: boolean;
  close(): void;
}

/** The store cannot be opened or written: `detail` says why and the fix. */
export class TunnelStoreError extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`tunnel store ${path}: ${detail}`);
    this.name = 'TunnelStoreError';
  }
}

const SCHEMA_VERSION = 1;

function openDatabase(path: string): SqlDatabase {
  // CommonJS, and loaded only by a broker: a client daemon never pays for the WebAssembly module
  const { Database } = createRequire(import.meta.url)('node-sqlite3-wasm') as { Database: new (file: string) => SqlDatabase };
  return new Database(path);
}

/** Takes `<path>.owner` for this process, or says who holds it. */
function claimOwner(path: string): number {
  const fd = openSync(`${path}.owner`, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  if (!loadNative().flock(fd)) {
    closeSync(fd);
    throw new TunnelStoreError(path, 'another process has it open (another tun6in4 with the same store?); give each broker its own store file');
  }
  return fd;
}

export interface StoreChange {
  puts: readonly BrokerTunnel[];
  deletes: readonly string[];
}

/** When a commit is durable: "normal" against a kill of the daemon, "full" against a power cut too. */
export type StoreSync = 'normal' | 'full';

export class TunnelStore {
  private constructor(
    readonly path: string,
    private readonly db: SqlDatabase,
    private readonly owner: number,
  ) {}

  /** Opens (creating it and its directory if need be) the store at `path`. */
  static open(path: string, sync: StoreSync = 'normal'): TunnelStore {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    } catch (e) {
      throw new TunnelStoreError(path, `cannot create its directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); create ${dirname(path)} for the daemon's user`);
    }
    let owner: number;
    try {
      owner = claimOwner(path);
    } catch (e) {
      if (e instanceof TunnelStoreError) throw e;
      throw new TunnelStoreError(path, `cannot open ${path}.owner (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); make ${dirname(path)} writable by the daemon's user`);
    }
    try {
      // left by an owner that was killed: ours to clear, we hold the owner lock
      rmdirSync(`${path}.lock`);
    } catch {
      // none, the usual case
    }
    let db: SqlDatabase | undefined;
    try {
      db = openDatabase(path);
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      const mode = db.all('PRAGMA journal_mode = WAL')[0]?.journal_mode;
      if (mode !== 'wal') throw new Error(`journal mode is ${String(mode)}, not wal`);
      db.exec(`PRAGMA synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
      const version = Number(db.all('PRAGMA user_version')[0]?.user_version ?? 0);
      if (version > SCHEMA_VERSION) throw new Error(`written by a newer tun6in4 (schema ${version}, this one reads ${SCHEMA_VERSION}); run that release, or export with it and import here`);
      // The WAL is created by this first write, while the daemon may still be root.
      db.exec(`CREATE TABLE IF NOT EXISTS tunnels (
        id TEXT PRIMARY KEY NOT NULL,
        remote TEXT,
        link TEXT NOT NULL,
        routed TEXT NOT NULL,
        mtu INTEGER NOT NULL,
        "user" TEXT,
        key_hash TEXT
      ) WITHOUT ROWID; PRAGMA user_version = ${SCHEMA_VERSION}`);
      return new TunnelStore(path, db, owner);
    } catch (e) {
      try {
        db?.close();
      } catch {
        // the open's own error is the one to report
      }
      closeSync(owner);
      if (e instanceof TunnelStoreError) throw e;
      throw new TunnelStoreError(path, `cannot open it as SQLite (${(e as Error).message}); check the path, or move a damaged file aside (the daemon starts with an empty store)`);
    }
  }

  /** Every stored tunnel, in id order, as checkBrokerTunnel gives it. */
  load(): BrokerTunnel[] {
    return this.db.all('SELECT id, remote, link, routed, mtu, "user", key_hash FROM tunnels ORDER BY id').map((r) =>
      checkBrokerTunnel({
        id: r.id as string,
        remote: (r.remote as string | null) ?? null,
        link: r.link as string,
        routed: JSON.parse(r.routed as string) as string[],
        mtu: Number(r.mtu),
        user: (r.user as string | null) ?? null,
        keyHash: (r.key_hash as string | null) ?? null,
      }),
    );
  }

  /**
   * Writes `change` in one transaction. `apply` runs inside it, after the rows are written and
   * before the commit (the live table takes the change there; what it refuses rolls the rows
   * back); `revert` runs if the commit itself fails, to take the change out of the table again.
   * Returns once the commit is durable.
   */
  change(change: StoreChange, apply: () => void, revert: () => void): void {
    this.db.exec('BEGIN IMMEDIATE');
    let applied = false;
    try {
      for (const t of change.puts) {
        this.db.run('INSERT OR REPLACE INTO tunnels (id, remote, link, routed, mtu, "user", key_hash) VALUES (?, ?, ?, ?, ?, ?, ?)', [
          t.id,
          t.remote,
          t.link,
          JSON.stringify(t.routed),
          t.mtu,
          t.user,
          t.keyHash,
        ]);
      }
      for (const id of change.deletes) this.db.run('DELETE FROM tunnels WHERE id = ?', [id]);
      apply();
      applied = true;
      this.db.exec('COMMIT');
    } catch (e) {
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // the transaction is gone with the connection's error; nothing was committed
        }
      }
      if (!applied) throw e;
      revert();
      throw new TunnelStoreError(this.path, `the change could not be committed (${(e as Error).message}); nothing changed: check the disk (space, permissions) and retry`);
    }
  }

  close(): void {
    try {
      this.db.close();
    } finally {
      closeSync(this.owner);
    }
  }
}
