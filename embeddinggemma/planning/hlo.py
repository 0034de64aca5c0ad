"""Reading a compiled program's optimised HLO text: collectives (with the loops they run in) and the
largest values it computes.

A collective inside a `while` body (the scanned layers, gradient caching's chunks, gradient
accumulation's micro-batches) appears once in the text but runs once per iteration. Each
computation's executions per step are therefore propagated from the entry computation: a loop body
runs its caller's count times the loop's trip count (XLA's `known_trip_count`; 1 where unknown),
every other called computation (fusions, branches of a conditional, reductions) its caller's count.
Both counts are reported: `ops` (in the text) and `per_step` (executed per step).
"""

from __future__ import annotations

import dataclasses
import math
import re

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1,
               "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4,
               "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16}

# A computation's header is the one unindented line ending in "{": `[ENTRY] %name (params) -> type {`.
# A computation's header is an unindented line ending in "{": `[ENTRY] %name (params) -> type {`.
_COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_ASSIGNMENT = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*")
_OPCODE = re.compile(r"\s*([\w\-]+)\(")
_ARRAY = re.compile(r"\b([a-z]+\d*[a-z0-9]*)\[([\d,]*)\]")
_CALLS = re.compile(r"\b(body|to_apply|calls|condition|branch_computations|true_computation|"
                    r"false_computation|called_computations)=(\{[^}]*\}|%[\w.\-]+)")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_INT_CONSTANT = re.compile(r"= s32\[\]\S* constant\((\d+)\)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def shape_bytes(shape: str) -> int:
    """Bytes of an HLO type: `bf16[256,512]{1,0}` or a tuple `(f32[4], s32[])` (summed)."""
    total = 0.0
    for dtype, dims in _ARRAY.findall(shape):
        if dtype in DTYPE_BYTES:
            total += DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
    return int(total)


@dataclasses.dataclass(frozen=True)
class Instruction:
    name: str
    shape: str
    opcode: str
    computation: str
    line: str

    @property
    def bytes(self) -> int:
        return shape_bytes(self.shape)

    @property
    def op_name(self) -> str:
        """The JAX source operation it came from (its metadata), "" when none."""
        match = _OP_NAME.search(self.line)
        return match.group(1) if match else ""


def _split_instruction(line: str) -> tuple[str, str, str] | None:
    """(name, result type, opcode) of an instruction line, None for any other line."""
    assignment = _ASSIGNMENT.match(line)
    if not assignment:
        return None
    rest = line[assignment.end():]
    if rest.startswith("("):  # a tuple type: up to its matching parenthesis
        depth, end = 0, 0
        while end == 0 or depth:
            depth += {"(": 1, ")": -1}.get(rest[end], 0)
            end += 1
        shape, rest = rest[:end], rest[end:]
    else:
        shape, _, rest = rest.partition(" ")
        rest = " " + rest
    opcode = _OPCODE.match(rest)
    return (assignment.group(1), shape, opcode.group(1)) if opcode else None


def _trip_count(line: str, condition: list[str]) -> int:
    """A while loop's iterations: XLA's `known_trip_count`, else the one integer constant its
    condition compares the counter with (scan loops count from 0 by 1); 1 when neither is found."""
    known = _TRIP_COUNT.search(line)
    if known:
        return int(known.group(1))
    constants = {int(c) for text in condition for c in _INT_CONSTANT.findall(text)}
    return constants.pop() if len(constants) == 1 else 1


def parse(hlo_text: str) -> tuple[list[Instruction], dict[str, int]]:
    """(every instruction, executions per step of every computation) of an HLO module's text."""
    instructions, bodies, entry, current = [], {}, None, None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = header.group(2)
            bodies[current] = []
            if header.group(1):
                entry = current
            continue
        parts = _split_instruction(line) if current is not None else None
        if parts:
            instructions.append(Instruction(*parts, current, line))
            bodies[current].append(line)
    calls = []  # (caller, callee, executions of the callee per execution of the caller)
    for instruction in instructions:
        called = {}
        for role, group in _CALLS.findall(instruction.line):
            for callee in (c.strip(" {}%") for c in group.split(",")):
                called[callee] = role
        condition = next((c for c, role in called.items() if role == "condition"), None)
        for callee, role in called.items():
            factor = 1
            if instruction.opcode == "while" and role == "body":
                factor = _trip_count(instruction.line, bodies.get(condition, []))
            calls.append((instruction.computation, callee, factor))
    executions: dict[str, int] = {entry: 1} if entry else {}
    # Relax until every count is settled (the call graph is acyclic; its depth bounds the rounds).
    for _ in range(len(bodies) + 1):
        updated = dict(executions)
        for caller, callee, factor in calls:
            if caller in executions:
                updated[callee] = max(updated.get(callee, 0), executions[caller] * factor)
        if updated == executions:
            break
        executions = updated
    return instructions, executions


def collectives(hlo_text: str) -> dict[str, dict[str, int]]:
    """Per kind of COLLECTIVES: `ops` in the program text, `per_step` executions, `bytes_per_step`
    (each execution's result on one chip, summed), `largest_bytes` (the largest single result).

    An asynchronous pair (`all-gather-start` / `all-gather-done`) counts once, by its `-done`,
    whose result is the collective's output.
    """
    instructions, executions = parse(hlo_text)
    report = {kind: {"ops": 0, "per_step": 0, "bytes_per_step": 0, "largest_bytes": 0}
              for kind in COLLECTIVES}
    for instruction in instructions:
        kind = instruction.opcode.removesuffix("-done")
        if kind not in report or instruction.opcode.endswith("-start"):
            continue
        runs = executions.get(instruction.computation, 1)
        entry = report[kind]
        entry["ops"] += 1
        entry["per_step"] += runs
        entry["bytes_per_step"] += runs * instruction.bytes
        entry["largest_bytes"] = max(entry["largest_bytes"], instruction.bytes)
    return report


def heaviest_collectives(hlo_text: str, count: int = 8) -> list[dict]:
    """The `count` collectives that move the most bytes per step, heaviest first: `{"kind", "shape",
    "per_step", "bytes_per_step", "op_name"}` (op_name: the JAX operation it serves)."""
    instructions, executions = parse(hlo_text)
    found = []
    for instruction in instructions:
        kind = instruction.opcode.removesuffix("-done")
        if kind in COLLECTIVES and not instruction.opcode.endswith("-start"):
            runs = executions.get(instruction.computation, 1)
            found.append({"kind": kind, "shape": instruction.shape.split("{")[0], "per_step": runs,
                          "bytes_per_step": runs * instruction.bytes, "op_name": instruction.op_name})
    return sorted(found, key=lambda c: -c["bytes_per_step"])[:count]


def largest_values(hlo_text: str, count: int = 5) -> list[dict]:
    """The `count` largest values the program computes (instruction results, one chip's share),
    largest first: `{"bytes", "shape", "opcode", "op_name"}`, the JAX operation that made each."""
    instructions, executions = parse(hlo_text)
    seen, out = set(), []
    for instruction in sorted(instructions, key=lambda i: -i.bytes):
        key = (instruction.shape, instruction.op_name)
        # Tuples (loop states, calls) and the parameters of called computations are other values
        # seen again; get-tuple-element and bitcast alias their operand.
        inner_parameter = instruction.opcode == "parameter" and executions.get(instruction.computation) != 1
        if (instruction.shape.startswith("(") or inner_parameter or key in seen
                or instruction.opcode in ("get-tuple-element", "bitcast")):
            continue
        seen.add(key)
        out.append({"bytes": instruction.bytes, "shape": instruction.shape.split("{")[0],
                    "opcode": instruction.opcode, "op_name": instruction.op_name})
        if len(out) == count:
            break
    return out


def has_custom_call(hlo_text: str, target: str) -> bool:
    """Whether the program calls the custom-call `target` (e.g. "tpu_custom_call": a Pallas/Mosaic kernel)."""
    return f'custom_call_target="{target}"' in hlo_text
