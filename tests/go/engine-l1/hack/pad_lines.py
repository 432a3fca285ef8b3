#!/usr/bin/env python3
"""Re-pads Go files so that chosen lines sit on fixed line numbers.

The stand-in engine must put some functions and statements on the same file:line as
the real engine (the tracer's engine profile names them by line). A marker line
    // pad:N
is followed by as many "//" filler lines as needed so that the next line of code
(skipping blank lines and comment lines that follow the filler, e.g. a doc comment
separated from the filler by a blank line) is line N. At top level, keep a blank line
between the filler and the declaration's doc comment (otherwise gofmt would treat
the filler as part of the doc comment and collapse it). Idempotent:
    python3 hack/pad_lines.py $(find . -name '*.go')
"""
import re
import sys

MARK = re.compile(r'^(\s*)// pad:(\d+)\s*$')
FILL = re.compile(r'^\s*//\s*$')
SKIP = re.compile(r'^\s*(//.*)?$')

failed = False


def pad(path):
    global failed
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
        j = i
        while j < len(lines) and SKIP.match(lines[j]) and not MARK.match(lines[j]):
            j += 1
        between = j - i
        need = target - (len(out) + 1) - between
        if need < 0:
            print(f"{path}: marker pad:{target} is {-need} line(s) too late (at line {len(out)})")
            failed = True
            need = 0
        out.extend([indent + '//'] * need)
    open(path, 'w').write('\n'.join(out))


for p in sys.argv[1:]:
    pad(p)
sys.exit(1 if failed else 0)
