#!/usr/bin/env python3
"""Summarises `perf script` output for the processes of one binary.

perf names threads, not processes (tokio's workers are all "tokio-rt-worker",
whatever binary they belong to), so this groups samples by process id: the
processes whose main thread is called COMM. Prints the hottest leaf functions
(self time) and the frames most often on the stack (inclusive time).

usage: perf script -i perf.data -F comm,pid,tid,ip,sym,dso --no-inline \
         | perf_summary.py deliver [N]
"""
import collections
import re
import sys

comm = sys.argv[1] if len(sys.argv) > 1 else "deliver"
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25

samples = []  # (pid, thread comm, [frames leaf first])
current = None
for line in sys.stdin:
    if not line.strip():
        continue
    if not line.startswith((" ", "\t")):
        # "<comm> <pid>/<tid>" (comm may contain spaces: take the last field)
        head = line.split()
        pid = head[-1].split("/")[0]
        current = (pid, " ".join(head[:-1]), [])
        samples.append(current)
    elif current is not None:
        parts = line.strip().split(" ", 1)
        frame = parts[1] if len(parts) > 1 else "?"
        frame = re.sub(r" \((/|\[).*\)$", "", frame)
        current[2].append(frame)

pids = {pid for pid, c, _ in samples if c == comm}
ours = [f for pid, _, f in samples if pid in pids and f]
n = len(ours)
if n == 0:
    sys.exit(f"no samples for processes named {comm}")
leaf = collections.Counter(f[0] for f in ours)
incl = collections.Counter()
for f in ours:
    incl.update(set(f))
print(f"{n} samples in {len(pids)} {comm} processes")
print(f"\n-- self time, top {top}")
for k, v in leaf.most_common(top):
    print(f"{100 * v / n:5.1f}%  {k[:140]}")
print(f"\n-- on the stack, top {top * 2}")
for k, v in incl.most_common(top * 2):
    print(f"{100 * v / n:5.1f}%  {k[:140]}")
