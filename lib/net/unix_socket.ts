/**
 * Makes a Unix socket path ready to listen on: a socket file left by a
 * server that is gone is removed; a live one, or a file that is not a
 * socket, is an error, so greeter never steals another server's socket.
 *
 * @throws {Error} With a message naming the path and what to do.
 */
export async function prepareUnixSocket(path: string): Promise<void> {
  const info = await Deno.lstat(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (!info) return;
  let why = "the path exists and is not a socket; remove it";
  if (info.isSocket) {
    try {
      (await Deno.connect({ transport: "unix", path })).close();
    } catch (error) {
      // Stale: nobody listens on it any more.
      if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
      return await Deno.remove(path);
    }
    why = "another server is listening on it; stop it";
  }
  const how = "or choose another --unix path";
  throw new Error(`Cannot listen on ${path}: ${why} ${how}`);
}
