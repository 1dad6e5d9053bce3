#!/usr/bin/env python3
"""Rewrite a .cu file for the CPU emulation (tests/gpu/emu): every kernel
launch `kernel<<<grid, block[, smem[, stream]]>>>(args)` (or
`kernel<T, U><<<...>>>(args)`, a template instance) becomes
`::emu::launch(kernel<T, U>, grid, block[, smem[, stream]])(args)`; nothing
else changes (the emulation's cuda_runtime.h / cublas_v2.h supply the rest).

  translate.py IN.cu OUT.cc
"""
import re
import sys

LAUNCH = re.compile(r"\b([A-Za-z_]\w*(?:<[^<>;(){}]*>)?)\s*<<<(.*?)>>>\s*\(", re.DOTALL)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: translate.py IN.cu OUT.cc")
    with open(sys.argv[1]) as f:
        src = f.read()
    out, count = LAUNCH.subn(lambda m: f"::emu::launch({m.group(1)}, {m.group(2)})(", src)
    if "<<<" in out:
        sys.exit(f"translate.py: error: {sys.argv[1]}: a launch was not rewritten")
    with open(sys.argv[2], "w") as f:
        f.write(f"// Generated from {sys.argv[1]} by translate.py ({count} launches).\n")
        f.write(f'#line 1 "{sys.argv[1]}"\n')
        f.write(out)


if __name__ == "__main__":
    main()
