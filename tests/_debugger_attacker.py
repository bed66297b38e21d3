# A local attacker against Deno's SIGUSR1 debugger, for tests/debugger_guard_test.ts:
# polls 127.0.0.1:9229 for SECONDS, and whenever something answers /json/list with a
# debugger URL, attaches and sends one Runtime.evaluate. Prints one JSON line:
# {"connected": N, "answered": N, "evaluated": N}. Run as another user (setpriv).
import base64, json, os, socket, sys, time

ADDR = ("127.0.0.1", 9229)
deadline = time.time() + float(sys.argv[1])
counts = {"connected": 0, "answered": 0, "evaluated": 0}


def recv_some(sock, want=b"\r\n\r\n", limit=65536):
    data = b""
    while want not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def evaluate(path):
    sock = socket.create_connection(ADDR, timeout=0.5)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9229\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        if b" 101 " not in recv_some(sock):
            return False
        payload = json.dumps({"id": 1, "method": "Runtime.evaluate",
                              "params": {"expression": "Deno.pid"}}).encode()
        mask = os.urandom(4)
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
        sock.sendall(header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        reply = recv_some(sock, want=b'"result"')
        return b'"result"' in reply
    finally:
        sock.close()


while time.time() < deadline:
    try:
        sock = socket.create_connection(ADDR, timeout=0.05)
    except OSError:
        time.sleep(0.001)
        continue
    counts["connected"] += 1
    try:
        sock.settimeout(0.1)
        sock.sendall(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:9229\r\n\r\n")
        reply = recv_some(sock, want=b"]")
    except OSError:
        reply = b""
    finally:
        sock.close()
    if not reply:
        continue
    counts["answered"] += 1
    text = reply.decode("latin-1")
    at = text.find("ws://127.0.0.1:9229")
    if at < 0:
        continue
    path = text[at + len("ws://127.0.0.1:9229"):].split('"')[0]
    try:
        if evaluate(path):
            counts["evaluated"] += 1
    except OSError:
        pass
print(json.dumps(counts))
