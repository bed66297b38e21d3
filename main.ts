/**
 * greeter's command line: parses arguments, wires signals and logging, and
 * calls the library. Run `deno run --allow-net main.ts --help`.
 *
 * @module
 */
import { formatAddress } from "./lib/address.ts";
import { readGreeting } from "./lib/client.ts";
import {
  type ConnectCommand,
  parseCommand,
  type ServeCommand,
} from "./lib/cli.ts";
import {
  explainConnectError,
  explainError,
  explainListenError,
} from "./lib/errors.ts";
import { createLineWriter } from "./lib/line_writer.ts";
import { readInputFile } from "./lib/read_file.ts";
import { prepareServe } from "./lib/serve_setup.ts";
import {
  type GreetingServer,
  ListenError,
  serveGreeting,
} from "./lib/server.ts";
import { VERSION } from "./lib/version.ts";

/** Thrown to end the run with a message already explained. */
class Exit extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

const SHUTDOWN_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

function listeningLine(addr: Deno.Addr, tls: boolean): string {
  return `Server is listening for incoming connections on ${
    formatAddress(addr)
  }${tls && addr.transport === "tcp" ? " (TLS)" : ""}`;
}

async function serve(command: ServeCommand): Promise<number> {
  const options = await prepareServe(command);
  const log = createLineWriter(Deno.stdout);
  let server: GreetingServer;
  try {
    server = serveGreeting({
      ...options,
      onConnection: command.quiet
        ? undefined
        : (remoteAddr) =>
          log.line(`Connection received from ${formatAddress(remoteAddr)}`),
    });
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    const { message, exitCode } = explainListenError(
      error.cause,
      error.address,
      error.port,
    );
    throw new Exit(message, exitCode);
  }

  const stop = () => {
    log.line("Shutting down: no new connections, finishing greetings");
    server.shutdown();
  };
  for (const signal of SHUTDOWN_SIGNALS) Deno.addSignalListener(signal, stop);
  for (const addr of server.addrs) {
    log.line(listeningLine(addr, command.tlsCert !== undefined));
  }
  try {
    await server.finished;
  } catch (error) {
    log.line(`Server stopped: ${explainError(error).message}`);
    await log.flush();
    return 1;
  } finally {
    for (const signal of SHUTDOWN_SIGNALS) {
      Deno.removeSignalListener(signal, stop);
    }
  }
  const { accepted, outcomes } = server.stats;
  log.line(
    `Server stopped: ${accepted} connections, ${outcomes.greeted} greeted`,
  );
  await log.flush();
  return 0;
}

async function connect(command: ConnectCommand): Promise<number> {
  const address = command.unix ??
    formatAddress({ transport: "tcp", ...command });
  try {
    const caCerts = command.ca === undefined
      ? undefined
      : [new TextDecoder().decode(await readInputFile(command.ca, "CA file"))];
    const tls = command.tls && { caCerts, insecure: command.insecure };
    for await (
      const chunk of readGreeting({ ...command, path: command.unix, tls })
    ) {
      let written = 0;
      while (written < chunk.length) {
        written += await Deno.stdout.write(chunk.subarray(written));
      }
    }
  } catch (error) {
    const { message, exitCode } = explainConnectError(error, address);
    throw new Exit(message, exitCode);
  }
  return 0;
}

/**
 * Runs greeter with the given arguments and resolves to the exit code.
 * Every failure is reported as one line on stderr, never a stack trace.
 */
export async function main(args: string[]): Promise<number> {
  try {
    const command = parseCommand(args);
    switch (command.command) {
      case "help":
        console.log(command.text);
        return 0;
      case "version":
        console.log(`greeter ${VERSION}`);
        return 0;
      case "connect":
        return await connect(command);
      case "serve":
        return await serve(command);
    }
  } catch (error) {
    const { message, exitCode } = error instanceof Exit
      ? error
      : explainError(error);
    console.error(`greeter: ${message}`);
    return exitCode;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
