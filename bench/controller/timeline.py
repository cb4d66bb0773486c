#!/usr/bin/env python3
"""Second-by-second timeline of a controller benchmark run.

Usage (next to a running benchmark, from its start):

    $B --serin <binary> --canaries 10000 ... > run.txt &
    python3 bench/controller/timeline.py run.txt > run-timeline.txt

From the line "new revisions sent" on, until the controller's /metrics stop answering, prints
every second: the analysis steps taken per second, the mean delay of those steps behind their
due time, how many of them were over 1 s late, and the CPU of the controller and of the
benchmark process (the dev cluster), in per cent of one core.
"""

import os
import re
import sys
import time
import urllib.request


def controller(out):
    """The controller's pid (from the benchmark's output) and its metrics port (its argv)."""
    while True:
        m = re.search(r"controller pid (\d+)", open(out).read())
        if m:
            pid = int(m.group(1))
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            return pid, argv[argv.index(b"--port") + 1].decode()
        time.sleep(0.5)


def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steps(text):
    """(count, sum, count of steps at most 1 s late) of the step delay histogram."""
    count = total = within = 0.0
    for line in text.splitlines():
        if line.startswith("serin_analysis_step_delay_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("serin_analysis_step_delay_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith('serin_analysis_step_delay_seconds_bucket{le="1.0"}'):
            within = float(line.split()[-1])
    return count, total, within


def main():
    out = sys.argv[1]
    pid, port = controller(out)
    bench = parent(pid)
    while "new revisions sent" not in open(out).read():
        time.sleep(0.2)
    print("# seconds steps/s mean-delay-s over-1s controller-cpu-% benchmark-cpu-%")
    start = time.time()
    last = None
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            ctl, dev = cpu_seconds(pid), cpu_seconds(bench)
        except (OSError, ValueError):
            break
        now = time.time() - start
        count, total, within = steps(text.decode())
        if last:
            dt, dn = now - last[0], count - last[1]
            mean = (total - last[2]) / dn if dn else 0.0
            late = dn - (within - last[3])
            print(
                f"{now:6.1f} {dn / dt:6.0f} {mean:6.3f} {late:5.0f} "
                f"{100 * (ctl - last[4]) / dt:4.0f} {100 * (dev - last[5]) / dt:4.0f}",
                flush=True,
            )
        last = (now, count, total, within, ctl, dev)
        time.sleep(1)


if __name__ == "__main__":
    main()
