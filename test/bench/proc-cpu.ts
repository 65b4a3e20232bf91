/**
 * CPU time of processes, read from /proc (Linux), for the benchmarks' CPU accounts: how much of
 * a machine's cores a phase used, and by whom.
 *
 * `utime + stime` of a process covers all its threads; `cutime + cstime` the children it has
 * reaped (recursively, each with its own reaped children). A live process tree therefore costs
 * the sum of all four over its live members. Resolution: one clock tick (10 ms).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Linux's USER_HZ: /proc reports times in these ticks on every architecture Node supports. */
const TICKS_PER_SECOND = 100;

interface ProcTimes {
  /** The process's own threads. */
  self: number;
  /** Its reaped descendants. */
  reaped: number;
  comm: string;
}

/** Seconds of CPU of one process, or undefined when it is gone. */
function timesOf(pid: number | 'self'): ProcTimes | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is parenthesised and may hold spaces; the fields after it are fixed.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // Field 3 (state) is fields[0]; utime, stime, cutime, cstime are fields 14–17.
  const tick = (field: number): number => Number(fields[field - 3]) / TICKS_PER_SECOND;
  return { self: tick(14) + tick(15), reaped: tick(16) + tick(17), comm: stat.slice(stat.indexOf('(') + 1, close) };
}

/** Direct children of a process (all its threads' children). */
function childrenOf(pid: number | 'self'): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const task of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/)) if (child) out.push(Number(child));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** CPU seconds used so far by `pid` (its threads) and by the rest of its tree (live or reaped). */
export function treeCpuSeconds(pid: number): { process: number; descendants: number } {
  const root = timesOf(pid);
  if (root === undefined) return { process: 0, descendants: 0 };
  let descendants = root.reaped;
  const pending = childrenOf(pid);
  while (pending.length > 0) {
    const child = pending.pop()!;
    const times = timesOf(child);
    if (times === undefined) continue;
    descendants += times.self + times.reaped;
    pending.push(...childrenOf(child));
  }
  return { process: root.self, descendants };
}

/** The pid of a direct child of this process whose command name is `comm` (e.g. etcd). */
export function childNamed(comm: string): number | undefined {
  return childrenOf('self').find((pid) => timesOf(pid)?.comm === comm);
}

/** CPU seconds of one process (its threads), 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  return timesOf(pid)?.self ?? 0;
}
