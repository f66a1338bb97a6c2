#!/usr/bin/env python3
"""tour.py [--check] [--synack PATH] [FILE...]: the quoted runs of the docs, from real runs.

FILE defaults to README.md and every docs/*.md. Two kinds of block are filled:

    <!-- run: COMMAND -->                 COMMAND run with bash, its stdout and stderr
    ...                                   quoted whole in a ```console block under
    <!-- /run -->                         `$ COMMAND`

    <!-- run: COMMAND ::: REGEX -->       the same, keeping only the lines REGEX finds
                                          (a `…` stands for each stretch left out)

    <!-- ladder: ARGS -->                 the ladder that `synack --color never -q lab
    ...                                   ARGS --ladder --isn 1000` prints (no --isn with
    <!-- /ladder -->                      --udp), folded in a <details> block

A block may hold more than one command and run them in a network namespace of their own:

    <!-- run: COMMAND [::: REGEX]         (REGEX: for the first command's output)
    $ COMMAND2                            each further `$ ` line is one more command,
    netns: SETUP -->                      quoted with its own output after the first's
                                          (other lines go on the command above them;
                                          SETUP is the rest of the marker, lines and all)

`netns:` runs SETUP, then the commands, in one bash inside a fresh private network
namespace (`unshare -n`, lo up), so a server, a client and a firewall rule of the block
stay there; SETUP starts the block's helpers (each bounded with `timeout`, output to a file
of the block's directory) and may call `listening PORT`, which waits up to 5 s for a TCP
listener on PORT. The commands of one block share one shell, so `$ echo $?` quotes the
status of the command before it; the last command must exit 0. After them the helpers
still running are stopped (SIGTERM).

`synack` in a COMMAND is the binary under test (SYNACK, default target/debug/synack: run
`cargo build` first). The blocks of one file run in order in one fresh directory that holds
a link to captures/, so a block can read the pcap that the block before it wrote. A COMMAND
must exit 0 (write `; echo "exit status $?"` to quote a failure). Run as root, or as a user
where user namespaces are allowed: every lab is a private network namespace, nothing is
left behind.

--check writes nothing: it re-runs every block and compares the new output with the quoted
one, exiting 1 on a difference. What changes from run to run is normalised away first:
ISNs (decimal and hex), ports and other numbers of five digits or more, decimals, MAC
addresses, times and durations, runs of spaces and of the ladders' `─`, the PID and random
part of the connect guard's table name, serve's `rtt_us` and the count of an interrupted
benchmark. What is racy by
design is left out too: the server's kernel state on each segment line and in each pcapng
comment (read right after the segment while the server thread runs on the other core), the
acknowledgment number of a segment that carries data (a segment the other side sent at the
same time may or may not have arrived), and how the client's segments, the server's
segments and the server thread's calls interleave (the order within each of the three is
compared: two segments in flight at once can cross). A block is tried up to eight times
before it counts as changed.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"<!-- (ladder|run): (.*?) -->\n(.*?)<!-- /\1 -->", re.S)
TRIES = 8  # a block whose segments can cross (--data twice) matches about every other run


def shell(cmd: str | list[str], cwd: str, env: dict) -> str:
    try:
        run = subprocess.run(
            ["bash", "-c", cmd] if isinstance(cmd, str) else cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        shown = cmd if isinstance(cmd, str) else cmd[-1]
        raise RuntimeError(f"`{shown}` ran longer than {err.timeout} s") from err
    if run.returncode != 0:
        shown = cmd if isinstance(cmd, str) else cmd[-1]
        raise RuntimeError(f"`{shown}` exited {run.returncode}:\n{run.stdout}")
    return run.stdout


def excerpt(output: str, keep: str | None) -> str:
    lines = [line.rstrip() for line in output.rstrip("\n").splitlines()]
    if keep is None:
        return "\n".join(lines)
    pattern = re.compile(keep)
    shown: list[str] = []
    for line in lines:
        if pattern.search(line):
            shown.append(line)
        elif not shown or shown[-1] != "…":
            shown.append("…")
    return "\n".join(shown)


def split_run(spec: str) -> tuple[list[str], str | None, str | None]:
    """The commands, the REGEX and the netns SETUP of a run block."""
    first, *rest = spec.split("\n")
    cmd, sep, keep = first.partition(" ::: ")
    cmds, setup = [cmd.strip()], None
    for line in rest:
        line = line.rstrip()
        if line.startswith("$ "):
            cmds.append(line[2:].strip())
        elif line.startswith("netns:"):
            setup = line[len("netns:") :].strip()
        elif setup is not None:  # the setup goes on to the end of the marker
            setup += "\n" + line
        else:  # a command goes on over several lines (a python3 -c "…")
            cmds[-1] += "\n" + line
    return cmds, (keep.strip() if sep else None), setup


MARK = "\x1etour.py command {}\x1e"
LISTENING = (
    "listening() { for _ in $(seq 100); do "
    'ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.05; done; '
    'echo "tour.py: nothing listens on port $1" >&2; return 1; }'
)


def script(cmds: list[str], setup: str | None) -> str:
    """One bash script: in a namespace, lo up and the setup; then each command
    after a marker line; the status of each command is $? for the next one."""
    parts = [] if setup is None else ["ip link set lo up", LISTENING, f"{{ {setup}\n}} || exit 97"]
    parts.append("rc=0")
    for i, cmd in enumerate(cmds):
        parts.append(f"printf '{MARK.format(i)}\\n'; (exit $rc); {cmd}\nrc=$?")
    if setup is not None:  # helpers still running now are stopped
        parts.append("kill $(jobs -p) 2>/dev/null")
    parts.append("wait; exit $rc")
    return "\n".join(parts)


def run_block(spec: str, cwd: str, env: dict) -> str:
    cmds, keep, setup = split_run(spec)
    if setup is None and len(cmds) == 1:
        outputs = [shell(cmds[0], cwd, env)]
    else:
        body = script(cmds, setup)
        cmd = ["unshare", "-n", "bash", "-c", body] if setup is not None else ["bash", "-c", body]
        out = shell(cmd, cwd, env)
        outputs = out.split("\n")  # the markers, each on its own line
        chunks: list[list[str]] = []
        for line in outputs:
            if line.startswith("\x1etour.py command "):
                chunks.append([])
            elif chunks:
                chunks[-1].append(line)
            elif line:
                raise RuntimeError(f"the setup printed `{line}` (send helpers' output to a file)")
        outputs = ["\n".join(c) for c in chunks]
    # REGEX keeps lines of the first command's output only.
    shown = [
        f"$ {c}\n{excerpt(o, keep if i == 0 else None)}".rstrip("\n")
        for i, (c, o) in enumerate(zip(cmds, outputs))
    ]
    return "```console\n" + "\n".join(shown) + "\n```\n"


def ladder_title(args: str) -> str:
    # `--time-wait 1s` is the default, there only to fill the marker.
    shown = " ".join(a for a in args.replace("--time-wait 1s", "").split(" ") if a)
    return " ".join(w for w in ["synack lab", shown, "--ladder"] if w)


def ladder_block(args: str, cwd: str, env: dict) -> str:
    isn = "" if "--udp" in args else " --isn 1000"  # no sequence numbers over UDP
    out = shell(f"synack --color never -q lab {args} --ladder{isn} -w tour.pcap", cwd, env)
    lines = out.splitlines()
    start = lines.index("ladder:") + 1
    end = lines.index("summary:") if "summary:" in lines else len(lines)
    body = "\n".join(line.rstrip() for line in lines[start:end])
    return (
        f"<details><summary>The ladder: <code>{ladder_title(args)}</code></summary>\n\n"
        f"```text\n{body}\n```\n</details>\n"
    )


def make(kind: str, spec: str, cwd: str, env: dict) -> str:
    return (run_block if kind == "run" else ladder_block)(spec, cwd, env)


GUARD = re.compile(r"\bsynack_guard_\d+_[0-9a-f]+\b")
# serve's kernel view is a sample taken after the call, while the peer
# goes on: ESTABLISHED one run, CLOSE-WAIT the next (a cross-check, not a
# row's claim), in the text lines and in --json.
SERVE_KERNEL = re.compile(r'(kernel: |"kernel":\{"state":")[A-Z][A-Z0-9-]*')
RTT_US = re.compile(r'"rtt_us":\d+')
CYCLES = re.compile(r"\b\d+ of (\d+) cycles\b")
MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
HEX = re.compile(r"\b0x[0-9a-f]{8}\b")
DURATION = re.compile(r"-?\b\d+(?:\.\d+)?\s?(?:µs|ms|s)\b")
LADDER_TIME = re.compile(r"-?\b\d+\.\d{6}\b")
BIG = re.compile(r"\b\d{5,}\b")
DECIMAL = re.compile(r"\b\d+\.\d+")
WIRE = re.compile(r"\[(?:SYN|ACK|FIN|RST|PSH|UDP)|\bARP\b")
# The server's kernel state: `client | SERVER` in the narration, the column
# after the arrow in a ladder.
NARRATION_SERVER = re.compile(r"\| [A-Z?][A-Z0-9-]*(?: → [A-Z0-9-]+)*")
LADDER_SERVER = re.compile(r"(─▶|win=\d+) [A-Z][A-Z0-9-]*")
COMMENT_SERVER = re.compile(r"; server [A-Z0-9 →-]+$")
# The kernel's sample of the server's state, said when it is ahead of the wire:
# whether the look-up beats the server application's close() is a race.
KERNEL_AHEAD = re.compile(r" ?\(the kernel is already in [A-Z0-9-]+: the server application called close\(\)\)")
# The acknowledgment number of a data segment, in the ladder and in the narration.
DATA_ACK = (re.compile(r"(\[PSH, ACK\] seq=\d+) ack=\d+"), re.compile(r"(\[PSH,ACK\] \S+ / \S+) \S+ / \S+"))
GROUPS = ("client's segment", "server's segment", "server app line", "line")


def normalise(block: str) -> list[list[str]]:
    """The lines of a block in four groups, each in order, with what varies gone:
    the segments each way (two segments in flight at once can cross), the server
    thread's calls, and the rest. An --explain sentence stays with its segment."""
    groups: list[list[str]] = [[], [], [], []]
    last = None
    for line in block.splitlines():
        line = GUARD.sub("synack_guard_PID_R", line)
        line = RTT_US.sub('"rtt_us":N', line)
        line = SERVE_KERNEL.sub(r"\1K", line)
        line = CYCLES.sub(r"C of \1 cycles", line)
        line = MAC.sub("MAC", line)
        line = HEX.sub("H", line)
        line = LADDER_TIME.sub("T", line)
        line = DURATION.sub("T", line)
        line = BIG.sub("N", line)
        line = DECIMAL.sub("D", line)
        line = re.sub(r"─+", "─", line)
        line = " ".join(line.split())
        line = COMMENT_SERVER.sub("; server S", line)
        line = KERNEL_AHEAD.sub("", line)
        if not line or line == "…":  # where a stretch left out falls is racy too
            continue
        if line.startswith("↳") and last is not None:
            groups[last][-1] += " " + line
            continue
        if WIRE.search(line):
            line = NARRATION_SERVER.sub("| S", line)
            line = LADDER_SERVER.sub(r"\1 S", line)
            line = DATA_ACK[1].sub(r"\1 A", DATA_ACK[0].sub(r"\1 ack=A", line))
            last = 1 if ("server → client" in line or "◀" in line) else 0
        elif "server app" in line or line.endswith(" ·"):
            last = 2
        else:
            last = 3
        groups[last].append(line)
    return groups


def difference(quoted: str, fresh: str) -> str | None:
    for name, a, b in zip(GROUPS, normalise(quoted), normalise(fresh)):
        for i in range(max(len(a), len(b))):
            qa = a[i] if i < len(a) else "(nothing)"
            fb = b[i] if i < len(b) else "(nothing)"
            if qa != fb:
                return f"{name} {i + 1} differs:\n  quoted: {qa}\n  now:    {fb}"
    return None


def process(path: str, check: bool, env: dict) -> int:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not BLOCK.search(text):
        return 0
    rel = os.path.relpath(path, ROOT)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="synack-tour-") as tmp:
        os.symlink(os.path.join(ROOT, "captures"), os.path.join(tmp, "captures"))

        def fill(m: re.Match) -> str:
            nonlocal failures
            kind, spec, quoted = m.group(1), m.group(2), m.group(3)
            name = spec.split("\n")[0]  # the first command, for the log
            if not check:
                body = make(kind, spec, tmp, env)
                print(f"tour.py: {rel}: {kind}: {name}", file=sys.stderr)
                return f"<!-- {kind}: {spec} -->\n{body}<!-- /{kind} -->"
            why = None
            for attempt in range(1, TRIES + 1):
                why = difference(quoted, make(kind, spec, tmp, env))
                if why is None:
                    break
                print(f"tour.py: {rel}: {name}: try {attempt}: {why}", file=sys.stderr)
            status = "ok" if why is None else "CHANGED"
            print(f"tour.py: {rel}: {kind}: {name}: {status}", file=sys.stderr)
            failures += why is not None
            return m.group(0)

        try:
            new = BLOCK.sub(fill, text)
        except RuntimeError as err:
            print(f"tour.py: {rel}: {err}", file=sys.stderr)
            return 1
    if not check and new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--synack", default=os.path.join(ROOT, "target/debug/synack"))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    synack = os.path.abspath(args.synack)
    if not os.access(synack, os.X_OK):
        sys.exit(f"tour.py: no binary at {synack}: run `cargo build` first")
    # `synack` in the commands is the binary under test.
    bindir = tempfile.mkdtemp(prefix="synack-bin-")
    os.chmod(bindir, 0o755)  # a block may run synack as nobody
    try:
        os.symlink(synack, os.path.join(bindir, "synack"))
        env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}", NO_COLOR="1")
        files = args.files or [os.path.join(ROOT, "README.md")] + sorted(
            glob.glob(os.path.join(ROOT, "docs", "*.md"))
        )
        failures = sum(process(os.path.abspath(f), args.check, env) for f in files)
    finally:
        os.unlink(os.path.join(bindir, "synack"))
        os.rmdir(bindir)
    if args.check and failures:
        print(f"tour.py: {failures} quoted block(s) no longer match", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
