"""A TCP proxy in front of PostgreSQL that a test can take down: ``close`` (connections refused and
the open ones reset: a server that is down), ``hang`` (connections accepted, no byte passes either
way: a network partition) and ``open`` again. One thread, one selector, loopback only."""

import selectors
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432):
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = "open"
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._peers: dict[socket.socket, socket.socket | None] = {}  # each side -> the other (None: held)
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="tcp-proxy", daemon=True)

    # ---------------------------------------------------------- what a test calls

    def __enter__(self) -> "TcpProxy":
        self._listen()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping = True
        self._poke()
        self._thread.join(timeout=5)

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by this proxy's."""
        head, _, tail = database_url.partition("@")
        rest = tail.split("/", 1)[1] if "/" in tail else ""
        return f"{head}@127.0.0.1:{self.port}/{rest}"

    def close(self) -> None:
        """The server goes away: new connections refused, open ones reset."""
        self._call("closed")

    def hang(self) -> None:
        """A partition: connections are accepted and open ones stay open, but no byte passes."""
        self._call("hang")

    def open(self) -> None:
        """Back to normal (connections held while hanging are dropped: their clients gave up)."""
        self._call("open")

    # ---------------------------------------------------------- the loop

    def _call(self, mode: str) -> None:
        done = threading.Event()
        with self._lock:
            self._pending = (mode, done)
        self._poke()
        done.wait(5)

    def _poke(self) -> None:
        self._wake_w.send(b"x")

    def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ)

    def _drop(self, sock: socket.socket, *, reset: bool = False) -> None:
        other = self._peers.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self._peers.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            if reset:  # RST, as a server that dies does to its clients
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()

    def _set_mode(self, mode: str) -> None:
        if mode == "closed":
            if self._listener is not None:
                self._sel.unregister(self._listener)
                self._listener.close()
                self._listener = None
            for sock in list(self._peers):
                if sock in self._peers:
                    self._drop(sock, reset=True)
        elif mode == "hang":
            for sock in self._peers:  # stop reading: data waits in the kernel's buffers
                self._sel.unregister(sock)
        elif mode == "open":
            if self.mode == "hang":
                for sock in list(self._peers):
                    if sock in self._peers:
                        self._drop(sock, reset=True)
            if self._listener is None:
                self._listen()
        self.mode = mode

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self.mode == "hang":
            self._peers[client] = None  # accepted, never answered
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(False)
        self._peers[client], self._peers[upstream] = upstream, client
        self._sel.register(client, selectors.EVENT_READ)
        self._sel.register(upstream, selectors.EVENT_READ)

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wake_r:
                    self._wake_r.recv(4096)
                    with self._lock:
                        pending, self._pending = getattr(self, "_pending", None), None
                    if pending:
                        self._set_mode(pending[0])
                        pending[1].set()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peers and self.mode == "open":
                    self._pump(sock)
        for sock in list(self._peers):
            if sock in self._peers:
                self._drop(sock)
        if self._listener is not None:
            self._listener.close()

    def _pump(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            self._peers[sock].setblocking(True)
            self._peers[sock].sendall(data)
            self._peers[sock].setblocking(False)
        except OSError:
            self._drop(sock)
