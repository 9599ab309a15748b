"""A FIX 4.4 market-data acceptor built on QuickFIX (the real engine, not our code).

It runs in a child process (``python quickfix_venue.py WORKDIR PORT``) driven over its
stdin/stdout with one JSON object a line, for two reasons: QuickFIX's own threads stay
out of the test process, and the process is killed at the end instead of calling
``Acceptor::stop()``, which in QuickFIX 1.16 races with the acceptor thread (both close
the socket server; one deletes it) and can crash the caller.

The acceptor records every message it receives or sends, answers a MarketDataRequest
(35=V, 263=1) with a snapshot (35=W), and on command sends incremental refreshes (35=X),
a TestRequest, skips a sequence number or logs out. QuickFIX listens on every
interface: start it only inside a private network namespace (see test_quickfix.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# -- the child: QuickFIX itself ----------------------------------------------------------


def _child(workdir: Path, port: int) -> None:  # pragma: no cover - runs in the subprocess
    import quickfix as fix  # type: ignore[import-not-found]

    spec_dir = Path(fix.__file__).resolve().parents[3] / "share" / "quickfix"
    lock = threading.Lock()
    state: dict[str, Any] = {"received": [], "sent": [], "logons": 0, "logouts": 0, "sid": None}

    def raw(message: Any) -> str:
        text: str = message.toString()
        return text

    def new(msg_type: str) -> Any:
        m = fix.Message()
        m.getHeader().setField(fix.BeginString("FIX.4.4"))
        m.getHeader().setField(fix.MsgType(msg_type))
        return m

    def send(m: Any) -> None:
        if not fix.Session.sendToTarget(m, state["sid"]):
            raise RuntimeError("QuickFIX refused to send")

    def snapshot(symbol: str, req_id: str) -> None:
        m = new("W")
        m.setField(fix.MDReqID(req_id))
        m.setField(fix.Symbol(symbol))
        for entry_type, px, size in (("0", "99.5", "10"), ("0", "99.25", "20"),
                                     ("1", "100", "5"), ("1", "100.25", "7")):  # fmt: skip
            g = fix.Group(268, 269)
            g.setField(fix.MDEntryType(entry_type))
            g.setField(fix.StringField(270, px))
            g.setField(fix.StringField(271, size))
            m.addGroup(g)
        send(m)

    def field(message: Any, tag: int) -> str:
        return str(message.getField(tag)) if message.isSetField(tag) else ""

    class App(fix.Application):  # type: ignore[misc]
        def onCreate(self, sid: Any) -> None:
            state["sid"] = sid

        def onLogon(self, sid: Any) -> None:
            with lock:
                state["logons"] += 1

        def onLogout(self, sid: Any) -> None:
            with lock:
                state["logouts"] += 1

        def toAdmin(self, message: Any, sid: Any) -> None:
            with lock:
                state["sent"].append(raw(message))

        def fromAdmin(self, message: Any, sid: Any) -> None:
            with lock:
                state["received"].append(raw(message))

        def toApp(self, message: Any, sid: Any) -> None:
            with lock:
                state["sent"].append(raw(message))

        def fromApp(self, message: Any, sid: Any) -> None:
            with lock:
                state["received"].append(raw(message))
            if message.getHeader().getField(35) == "V" and field(message, 263) == "1":
                group = fix.Group(146, 55)
                message.getGroup(1, group)
                snapshot(str(group.getField(55)), field(message, 262))

    cfg = workdir / "acceptor.cfg"
    cfg.write_text(
        "[DEFAULT]\n"
        "ConnectionType=acceptor\n"
        f"SocketAcceptPort={port}\n"
        "SocketReuseAddress=Y\n"
        "StartTime=00:00:00\n"
        "EndTime=00:00:00\n"
        f"FileStorePath={workdir / 'store'}\n"
        f"FileLogPath={workdir / 'log'}\n"
        "UseDataDictionary=Y\n"
        f"DataDictionary={spec_dir / 'FIX44.xml'}\n"
        "ValidateUserDefinedFields=N\n"
        "ResetOnLogon=N\n"
        "\n[SESSION]\n"
        "BeginString=FIX.4.4\n"
        "SenderCompID=VENUE\n"
        "TargetCompID=HUB\n"
    )
    settings = fix.SessionSettings(str(cfg))
    app = App()
    acceptor = fix.SocketAcceptor(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    acceptor.start()

    def session() -> Any:
        s = fix.Session.lookupSession(state["sid"])
        s.thisown = False  # QuickFIX's registry owns it
        return s

    def reply(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"ready": True})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "dump":
                with lock:
                    reply({k: v for k, v in state.items() if k != "sid"}
                          | {"logged_on": bool(session().isLoggedOn())})  # fmt: skip
                continue
            if op == "incremental":
                m = new("X")
                m.setField(fix.MDReqID(cmd["req_id"]))
                for action, entry_type, symbol, px, size in cmd["entries"]:
                    g = fix.Group(268, 279)
                    g.setField(fix.MDUpdateAction(action))
                    g.setField(fix.MDEntryType(entry_type))
                    g.setField(fix.Symbol(symbol))
                    g.setField(fix.StringField(270, px))
                    g.setField(fix.StringField(271, size))
                    m.addGroup(g)
                send(m)
            elif op == "test_request":
                m = new("1")
                m.setField(fix.TestReqID(cmd["id"]))
                send(m)
            elif op == "skip":
                s = session()
                s.setNextSenderMsgSeqNum(s.getExpectedSenderNum() + cmd["n"])
            elif op == "logout":
                s = session()
                s.logout(cmd["text"])

                def enable_again(s: Any = s) -> None:
                    # QuickFIX's logout() also disables the session: it would hang up on
                    # every new Logon. Enable it again once the Logout went out.
                    deadline = time.monotonic() + 10
                    while s.isLoggedOn() and time.monotonic() < deadline:
                        time.sleep(0.01)
                    s.logon()

                threading.Thread(target=enable_again, daemon=True).start()
            reply({"ok": True})
        except Exception as exc:  # the parent shows it in the test failure
            reply({"error": repr(exc)})


# -- the parent: what a test holds -----------------------------------------------------------
class QuickFixVenue:
    """The QuickFIX acceptor ``VENUE`` (for the initiator ``HUB``) in a child process."""

    def __init__(self, workdir: Path, port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(workdir), str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self._read()
        if not first.get("ready"):
            raise RuntimeError(f"QuickFIX did not start: {first}")

    @property
    def endpoint(self) -> str:
        return f"fix://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Kill QuickFIX (never ``stop()``: see the module docstring)."""
        self._proc.kill()
        self._proc.wait(timeout=10)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the QuickFIX process exited")
        data: dict[str, Any] = json.loads(line)
        return data

    def _call(self, op: str, **args: object) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"QuickFIX venue, {op}: {answer['error']}")
        return answer

    # -- what it saw --------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return self._call("dump")

    def frames(self, direction: str, msg_type: str | None = None) -> list[Any]:
        """Messages ``"received"`` or ``"sent"`` by QuickFIX, parsed by our scanner."""
        from hub_plugin_fix.scanner import scan_messages

        raw = "".join(self.dump()[direction]).encode("latin-1")
        frames = scan_messages(raw)
        return [f for f in frames if msg_type is None or f.msg_type == msg_type]

    @property
    def logons(self) -> int:
        return int(self.dump()["logons"])

    @property
    def logouts(self) -> int:
        return int(self.dump()["logouts"])

    def logged_on(self) -> bool:
        return bool(self.dump()["logged_on"])

    # -- what it does ---------------------------------------------------------------------------
    def send_incremental(self, req_id: str, entries: list[tuple[str, str, str, str, str]]) -> None:
        """35=X with (action, entry type, symbol, price, size) entries."""
        self._call("incremental", req_id=req_id, entries=entries)

    def send_test_request(self, test_id: str) -> None:
        self._call("test_request", id=test_id)

    def skip_sequence(self, n: int = 1) -> None:
        """QuickFIX's next message skips ``n`` MsgSeqNum (it never stored them)."""
        self._call("skip", n=n)

    def logout(self, text: str) -> None:
        self._call("logout", text=text)

    def wait(self, predicate: Any, timeout: float = 10.0, what: str = "") -> None:
        """Poll from synchronous code (QuickFIX works on its own threads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"QuickFIX venue: timed out waiting for {what}")


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]))
