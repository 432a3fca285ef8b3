#!/usr/bin/env python3
"""Re-pads Go files so that chosen statements sit on fixed line numbers.

The stand-in engine must put some statements on the same file:line as the real
engine (the tracer's engine profile names them by line). A marker line
    // pad:N
is followed by as many "//" lines as needed so that the line after the padding is
line N. Run it after editing any file that has markers; it is idempotent:
    python3 hack/pad_lines.py dagql/*.go engine/filesync/*.go ...
"""
import re
import sys

MARK = re.compile(r'^(\s*)// pad:(\d+)\s*$')
FILL = re.compile(r'^\s*//\s*$')


def pad(path):
    lines = open(path).read().split('\n')
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARK.match(line)
        if not m:
            out.append(line)
            i += 1
            continue
        indent, target = m.group(1), int(m.group(2))
        out.append(line)
        i += 1
        while i < len(lines) and FILL.match(lines[i]):
            i += 1
        # out has len(out) lines; the next line would be number len(out)+1.
        need = target - (len(out) + 1)
        if need < 0:
            sys.exit(f"{path}: marker pad:{target} is {-need} line(s) too late (at line {len(out)})")
        out.extend([indent + '//'] * need)
    open(path, 'w').write('\n'.join(out))


for p in sys.argv[1:]:
    pad(p)
