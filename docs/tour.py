#!/usr/bin/env python3
"""tour.py [SYNACK]: fills the ladders of README.md's tour.

Every block in README.md that reads

    <!-- ladder: ARGS -->
    ...
    <!-- /ladder -->

is replaced by the ladder that `synack --color never -q lab ARGS --ladder
--isn 1000` (no --isn with --udp) prints in a run made now (ARGS go through the shell, so
"$(printf …)" works), folded in a <details> block. Run as root, or as a
user where user namespaces are allowed, after `cargo build`; SYNACK
defaults to target/debug/synack. Every run is the real lab: a private
network namespace, nothing left behind.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"<!-- ladder: (.*?) -->\n.*?<!-- /ladder -->", re.S)


def ladder(synack: str, args: str, pcap: str) -> str:
    isn = "" if "--udp" in args else " --isn 1000"  # no sequence numbers over UDP
    cmd = f"{synack} --color never -q lab {args} --ladder{isn} -w {pcap}"
    run = subprocess.run(
        ["bash", "-c", cmd], capture_output=True, text=True, timeout=60, check=False
    )
    if run.returncode != 0:
        sys.exit(f"tour.py: `{cmd}` exited {run.returncode}:\n{run.stderr}")
    lines = run.stdout.splitlines()
    start = lines.index("ladder:") + 1
    end = lines.index("summary:") if "summary:" in lines else len(lines)
    return "\n".join(line.rstrip() for line in lines[start:end])


def main() -> int:
    synack = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/synack")
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "tour.pcap")

        def fill(m: re.Match) -> str:
            args = m.group(1)
            # `--time-wait 1s` is the default, there only to fill the marker.
            shown = " ".join(a for a in args.replace("--time-wait 1s", "").split(" ") if a)
            title = " ".join(w for w in ["synack lab", shown, "--ladder"] if w)
            body = ladder(synack, args, pcap)
            print(f"tour.py: {shown}: {len(body.splitlines())} rows", file=sys.stderr)
            return (
                f"<!-- ladder: {args} -->\n"
                f"<details><summary>The ladder: <code>{title}</code></summary>\n\n"
                f"```text\n{body}\n```\n</details>\n<!-- /ladder -->"
            )

        text = BLOCK.sub(fill, text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
