"""An ssh agent relayed into a RUN step (RUN --mount=type=ssh): a socket with the mount's owner and mode that
forwards every connection to the agent given with --ssh."""

from __future__ import annotations

import os
import selectors
import socket
import threading


class AgentRelay:
    """A socket with the mount's owner and mode that forwards every connection to the ssh agent: the agent's
    own socket is neither exposed nor changed (BuildKit forwards it through its session the same way)."""

    def __init__(self, agent: str, path: str, uid: int, gid: int, mode: int):
        self.agent = agent
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        self._listener.listen(16)
        threading.Thread(target=self._serve, daemon=True, name="ssh-agent-relay").start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed at the end of the step
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            try:
                upstream.connect(self.agent)
            except OSError:
                return
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                while True:
                    for key, _ in selector.select():
                        try:
                            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                            if not data:
                                return
                            key.data.sendall(data)
                        except OSError:
                            return

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self._listener.close()
