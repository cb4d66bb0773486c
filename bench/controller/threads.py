#!/usr/bin/env python3
"""CPU of each thread of the controller and of the benchmark process during a benchmark run.

Usage (next to a running benchmark, from its start):

    $B --serin <binary> --canaries 10000 ... > run.txt &
    python3 bench/controller/threads.py run.txt > run-threads.txt

From the line "new revisions sent" on, every 3 s, prints the five busiest threads of each
process with their CPU over the last 3 s in per cent of one core (from
/proc/<pid>/task/*/stat): `ctl` is the controller, `dev` the benchmark process (the dev
cluster, its simulator and the benchmark's watches). A thread near 100 % would be a
single-thread bottleneck. Ends when the controller exits.
"""

import os
import re
import sys
import time

PERIOD = 3.0


def pids(out):
    """The controller's pid (from the benchmark's output, once the burst is sent) and its parent's."""
    while True:
        try:
            text = open(out).read()
        except FileNotFoundError:
            text = ""
        m = re.search(r"controller pid (\d+)", text)
        if m and "new revisions sent" in text:
            ctl = int(m.group(1))
            stat = open(f"/proc/{ctl}/stat").read()
            return ctl, int(stat[stat.rindex(")") + 2:].split()[1])
        time.sleep(0.5)


def threads(pid):
    """{tid: (name, utime + stime in clock ticks)} of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


def main():
    ctl, bench = pids(sys.argv[1])
    tck = os.sysconf("SC_CLK_TCK")
    start = time.time()
    before = {ctl: threads(ctl), bench: threads(bench)}
    while True:
        time.sleep(PERIOD)
        try:
            now = {ctl: threads(ctl), bench: threads(bench)}
        except OSError:
            return
        line = [f"{time.time() - start:6.1f}"]
        for pid, label in ((ctl, "ctl"), (bench, "dev")):
            busy = sorted(
                ((ticks - before[pid].get(tid, (name, 0))[1], name) for tid, (name, ticks) in now[pid].items()),
                reverse=True,
            )[:5]
            line.append(label + ": " + " ".join(f"{name}={100 * d / tck / PERIOD:.0f}" for d, name in busy if d > 0))
        print("  ".join(line), flush=True)
        before = now


if __name__ == "__main__":
    main()
