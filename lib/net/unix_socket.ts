/**
 * Makes a Unix socket path ready to listen on: a socket file left by a
 * server that is gone is removed; a live one, or a file that is not a
 * socket, is an error, so greeter never steals another server's socket.
 *
 * @throws {Error} With a message naming the path and what to do.
 */
export async function prepareUnixSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  if (!info.isSocket) {
    throw new Error(
      `Cannot listen on ${path}: the path exists and is not a socket; ` +
        "remove it or choose another --unix path",
    );
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) {
      await Deno.remove(path); // Stale: nobody listens on it any more.
      return;
    }
    throw error;
  }
  throw new Error(
    `Cannot listen on ${path}: another server is listening on it; stop ` +
      "it or choose another --unix path",
  );
}
