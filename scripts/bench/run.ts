/**
 * Running commands from the repository root, and the servers still running,
 * so that an interrupted benchmark leaves none behind.
 *
 * @module
 */
import { ROOT } from "./config.ts";

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` to the end (or `timeoutMs`); a failure to start is code -1. */
export async function run(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<Output> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } catch (error) {
    return { code: -1, stdout: "", stderr: String(error) };
  }
}

/** The first element of `command` run with the rest as its arguments. */
export function runCommand(
  command: string[],
  timeoutMs?: number,
): Promise<Output> {
  return run(command[0], command.slice(1), timeoutMs);
}

export async function which(cmd: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${cmd}`])).code === 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const children = new Set<Deno.ChildProcess>();

/** Spawns a long-running child that {@linkcode killAll} will end. */
export function spawn(
  cmd: string,
  args: string[],
): Deno.ChildProcess {
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  children.add(child);
  return child;
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM, then SIGKILL if the child has not exited within 3 s. */
export async function stop(child: Deno.ChildProcess): Promise<void> {
  kill(child, "SIGTERM");
  const exited = await Promise.race([
    child.status.then(() => true),
    sleep(3000).then(() => false),
  ]);
  if (!exited) {
    kill(child, "SIGKILL");
    await child.status;
  }
  children.delete(child);
}

/** Kills every child still running (on exit or interruption). */
export function killAll(): void {
  for (const child of children) kill(child, "SIGKILL");
  children.clear();
}
