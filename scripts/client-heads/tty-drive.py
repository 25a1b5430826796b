#!/usr/bin/env python3
"""Runs an interactive terminal program on a pseudo-terminal until a file shows it called out.

Usage: tty-drive.py <heads.jsonl> <min-lines> <seconds> -- <program> [args...]

Full-screen CLIs (the Codex TUI) ask the terminal where the cursor is and what colours it
uses, and wait for the answer; this plays a minimal terminal: it answers the cursor-position
query (ESC [ 6 n) and the colour queries (OSC 10/11), accepts whatever trust or onboarding
prompt shows with Enter, and stops the program once <heads.jsonl> has <min-lines> lines (the
mock upstream appends one per request) or after <seconds>. The exit status is 0 when the
lines arrived, 1 otherwise.
"""

import os
import pty
import select
import signal
import sys
import time


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def main():
    if "--" not in sys.argv:
        print(__doc__, file=sys.stderr)
        return 2
    sep = sys.argv.index("--")
    heads, min_lines, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    argv = sys.argv[sep + 1:]
    start_lines = lines_in(heads)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.setdefault("TERM", "xterm-256color")
        os.execvp(argv[0], argv)
    deadline = time.time() + seconds
    screen = b""
    enters = 0
    last_enter = time.time()
    ok = False
    while time.time() < deadline:
        if lines_in(heads) - start_lines >= min_lines:
            ok = True
            # Let the answer reach the program before it is stopped.
            time.sleep(1.0)
            break
        r, _, _ = select.select([fd], [], [], 0.2)
        if fd in r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            screen = (screen + data)[-65536:]
            if b"\x1b[6n" in data:
                os.write(fd, b"\x1b[1;1R")
            if b"\x1b]10;?" in data:
                os.write(fd, b"\x1b]10;rgb:ffff/ffff/ffff\x1b\\")
            if b"\x1b]11;?" in data:
                os.write(fd, b"\x1b]11;rgb:0000/0000/0000\x1b\\")
        # Onboarding screens (trust this folder, what's new) wait for Enter.
        if time.time() - last_enter > 3.0 and enters < 5:
            os.write(fd, b"\r")
            enters += 1
            last_enter = time.time()
    try:
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    if not ok:
        tail = screen[-2000:].decode("utf-8", "replace")
        print(f"tty-drive: no request after {seconds}s; screen tail:\n{tail}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
