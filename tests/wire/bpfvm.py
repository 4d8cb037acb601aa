"""A small classic-BPF interpreter: runs our compiled filters on frames without a kernel.

It follows the kernel's rules for the instructions tcplab emits: a load beyond the end of
the frame ends the program with "drop", and the ancillary packet-type load reads the
``pkttype`` the caller supplies (0 = addressed to this host, 4 = outgoing).
"""

from __future__ import annotations

import struct

from tcplab.wire import bpf


class _OutOfBounds(Exception):
    pass


def _load(frame: bytes, offset: int, size: int) -> int:
    if offset < 0 or offset + size > len(frame):
        raise _OutOfBounds
    return int.from_bytes(frame[offset : offset + size], "big")


def run(program: list[bpf.Instruction], frame: bytes, *, pkttype: int = 0) -> int:
    """Return the filter's verdict: bytes of the frame to keep (0 = drop)."""
    a = x = 0
    pc = 0
    steps = 0
    pkttype_k = (bpf.SKF_AD_OFF + bpf.SKF_AD_PKTTYPE) & 0xFFFFFFFF
    try:
        while True:
            steps += 1
            if steps > 10_000 or pc >= len(program):
                raise AssertionError("program ran off its end or looped")
            ins = program[pc]
            code, k = ins.code, ins.k & 0xFFFFFFFF
            pc += 1
            if code == bpf.LD_W_ABS and k == pkttype_k:
                a = pkttype
            elif code == bpf.LD_W_ABS:
                a = _load(frame, k, 4)
            elif code == bpf.LD_H_ABS:
                a = _load(frame, k, 2)
            elif code == bpf.LD_B_ABS:
                a = _load(frame, k, 1)
            elif code == bpf.LD_W_IND:
                a = _load(frame, x + k, 4)
            elif code == bpf.LD_H_IND:
                a = _load(frame, x + k, 2)
            elif code == bpf.LD_B_IND:
                a = _load(frame, x + k, 1)
            elif code == bpf.LDX_B_MSH:
                x = 4 * (_load(frame, k, 1) & 0x0F)
            elif code == bpf.ALU_AND_K:
                a &= k
            elif code == bpf.JMP_JA:
                pc += k
            elif code in (bpf.JMP_JEQ_K, bpf.JMP_JGT_K, bpf.JMP_JGE_K, bpf.JMP_JSET_K):
                test = {
                    bpf.JMP_JEQ_K: a == k,
                    bpf.JMP_JGT_K: a > k,
                    bpf.JMP_JGE_K: a >= k,
                    bpf.JMP_JSET_K: bool(a & k),
                }[code]
                pc += ins.jt if test else ins.jf
            elif code == bpf.RET_K:
                return k
            else:
                raise AssertionError(f"unknown opcode {code:#x}")
    except _OutOfBounds:
        return 0


def unpack(raw: bytes) -> list[bpf.Instruction]:
    """Inverse of :func:`tcplab.wire.bpf.pack_program` (to check the bytes handed to the kernel)."""
    return [bpf.Instruction(*fields) for fields in struct.iter_unpack("=HBBI", raw)]
