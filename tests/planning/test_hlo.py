"""Reading compiled HLO: collectives counted per step through the loops they run in."""

from __future__ import annotations

from embeddinggemma.planning import hlo

# A scheduled module in the form XLA prints: a loop of 5 iterations (its trip count only in the
# condition's constant, as TPU programs have it) whose body all-reduces a [4, 8] bf16 value and
# all-gathers asynchronously; one all-reduce of a tuple outside the loop.
TEXT = """HloModule m, is_scheduled=true

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%cond (p: (s32[], bf16[4,8])) -> pred[] {
  %c5 = s32[]{:T(128)} constant(5)
  %p = (s32[], bf16[4,8]{1,0:T(8,128)}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %lt = pred[] compare(%i, %c5), direction=LT
}

%body (p: (s32[], bf16[4,8])) -> (s32[], bf16[4,8]) {
  %p = (s32[], bf16[4,8]{1,0:T(8,128)}) parameter(0)
  %x = bf16[4,8]{1,0:T(8,128)} get-tuple-element(%p), index=1
  %r = bf16[4,8]{1,0:T(8,128)} all-reduce(%x), to_apply=%add, metadata={op_name="jit(f)/psum"}
  %g = (bf16[4,8], bf16[16,8]) all-gather-start(%r), dimensions={0}
  %d = bf16[16,8]{1,0} all-gather-done(%g)
  %i = s32[] get-tuple-element(%p), index=0
  ROOT %t = (s32[], bf16[4,8]{1,0:T(8,128)}) tuple(%i, %r)
}

ENTRY %main (x: bf16[4,8], y: f32[2,3]) -> (s32[], bf16[4,8]) {
  %x = bf16[4,8]{1,0} parameter(0)
  %y = f32[2,3]{1,0} parameter(1)
  %z = (f32[2,3], f32[2,3]) all-reduce(%y, %y), replica_groups={}, to_apply=%add
  %zero = s32[] constant(0)
  %init = (s32[], bf16[4,8]) tuple(%zero, %x)
  ROOT %w = (s32[], bf16[4,8]{1,0:T(8,128)}) while(%init), condition=%cond, body=%body
}
"""


def test_collectives_count_loop_iterations_and_async_pairs_once():
    report = hlo.collectives(TEXT)
    assert report["all-reduce"] == {"ops": 2, "per_step": 1 + 5, "largest_bytes": 2 * 4 * 8,
                                    "bytes_per_step": 2 * 6 * 4 + 5 * 2 * 4 * 8}
    assert report["all-gather"] == {"ops": 1, "per_step": 5, "bytes_per_step": 5 * 2 * 16 * 8,
                                    "largest_bytes": 2 * 16 * 8}
    assert report["reduce-scatter"]["ops"] == report["all-to-all"]["ops"] == 0
    heaviest = hlo.heaviest_collectives(TEXT, count=1)[0]
    assert heaviest["kind"] == "all-gather" and heaviest["shape"] == "bf16[16,8]"
    assert hlo.heaviest_collectives(TEXT)[1]["op_name"] == "jit(f)/psum"


def test_largest_values_skip_tuples_and_the_parameters_of_called_computations():
    largest = hlo.largest_values(TEXT, count=2)
    assert [v["shape"] for v in largest] == ["bf16[16,8]", "bf16[4,8]"]
    assert largest[0]["bytes"] == 2 * 16 * 8
