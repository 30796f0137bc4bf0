"""The rule catalogue: codes, names, explanations, examples and standard fixes."""

from __future__ import annotations

from dataclasses import dataclass

from numsentry.errors import UserError

__all__ = ["RULES", "Rule", "get_rule", "select_rules"]


@dataclass(frozen=True)
class Rule:
    """A rule: ``code`` (NUM001), ``name`` (log-nonpositive), what it means, example and fix."""

    code: str
    name: str
    summary: str
    explanation: str
    example: str
    fix: str


RULES: dict[str, Rule] = {r.code: r for r in [
    Rule("NUM001", "log-nonpositive", "log of a value that can be <= 0",
         "Log (and ReduceLogSum) of 0 gives -inf, of a negative gives NaN. Softmax and sigmoid "
         "outputs reach exactly 0 in floating point (exp underflows below about -103.97 in "
         "float32), and guards like `1e-10 + 1 - p` vanish in float32 because 1 + 1e-10 == 1.",
         "loss = -sum(y * log(softmax(z)))   # softmax(z) can be exactly 0",
         "use LogSoftmax / log_softmax, or clip the argument: log(clip(p, 1e-7, 1))"),
    Rule("NUM002", "division-by-zero", "division by a divisor that can be 0",
         "Div, Reciprocal, Mod and normalisations (LayerNorm, BatchNorm with a zero variance, "
         "LpNormalization) divide by a value that the input ranges allow to be exactly 0: x/0 is "
         "±inf and 0/0 is NaN.",
         "y = x / x.sum()   # the sum can be 0",
         "add an epsilon that survives the dtype (x / (s + 1e-6)) or clip the divisor away from 0"),
    Rule("NUM003", "exp-overflow", "exp (or cosh, sinh, softplus, logsumexp) can overflow to inf",
         "exp(x) is inf in float32 for x > 88.72 (float16: x > 11.09). Cosh, Sinh, Softplus and "
         "ReduceLogSumExp computed naively overflow the same way.",
         "p = exp(z) / exp(z).sum()   # z above 88.7 overflows",
         "subtract the max before exp (use Softmax / LogSumExp), or clip the argument"),
    Rule("NUM004", "sqrt-negative", "sqrt of a value that can be negative",
         "Sqrt of a negative value is NaN. Differences of squares (E[x²] - E[x]²) can go "
         "slightly negative by rounding.",
         "std = sqrt(mean(x*x) - mean(x)**2)",
         "clip the argument at 0 (sqrt(max(v, 0) + eps)) or use a numerically stable variance"),
    Rule("NUM005", "pow-invalid", "pow with a negative base and non-integer exponent, or 0 ** negative",
         "x ** y is NaN for x < 0 and non-integer y, and inf for x == 0 and y < 0.",
         "y = x ** 0.5   # x can be negative",
         "clip the base (clip(x, eps, inf) ** y)"),
    Rule("NUM006", "inverse-trig-domain", "Acos/Asin outside [-1, 1], Acosh below 1, Atanh at or beyond ±1",
         "Inverse trigonometric and hyperbolic functions are NaN (or ±inf for Atanh(±1)) outside "
         "their domain. A cosine similarity can exceed 1 by rounding.",
         "angle = acos(cos_sim(a, b))   # cos_sim can be 1.0000001",
         "clip the argument to the domain, e.g. acos(clip(c, -1 + 1e-7, 1 - 1e-7))"),
    Rule("NUM007", "dtype-overflow", "arithmetic can exceed the largest finite value of the dtype",
         "MatMul, Gemm, Conv, Add, Mul, Sum, ReduceSum, ReduceProd, Pow... can produce a value "
         "beyond the dtype's range (float16: 65504, bfloat16/float32: ~3.4e38), which becomes ±inf.",
         "y = x @ W   # |x| |W| K > 65504 in float16",
         "scale inputs/weights down, keep the op in float32 (mixed precision), or clip"),
    Rule("NUM008", "cast-overflow", "a Cast to a narrower float can overflow to inf",
         "Casting float32 to float16 maps anything beyond ±65504 to ±inf.",
         "h = x.half()   # x up to 1e5",
         "clip before the cast or keep the tensor in float32"),
    Rule("NUM009", "range-zero-step", "Range with a step that can be 0",
         "Range(start, limit, 0) has no finite length.",
         "idx = range(0, n, step)   # step can be 0",
         "make the step a nonzero constant"),
    Rule("NUM010", "integer-division-by-zero", "integer Div or Mod by a divisor that can be 0",
         "Integer division by zero is undefined behaviour on most runtimes (crash or garbage).",
         "q = n // d   # d can be 0",
         "guard the divisor (max(d, 1))"),
    Rule("NUM011", "sqrt-zero-gradient", "sqrt of a value that can be exactly 0 (infinite gradient)",
         "The forward value sqrt(0) = 0 is fine, but the derivative 1 / (2 sqrt(x)) is inf at 0, so "
         "training backpropagates inf, and inf * 0 = NaN through the chain rule. Norms of vectors "
         "that can be all zero, and exp(x) that underflows (or is flushed) to 0 under a sqrt, hit it.",
         "std = sqrt(mean(d * d))   # all-equal inputs give d = 0",
         "add an epsilon inside the sqrt: sqrt(v + 1e-12), or clip the argument away from 0"),
    Rule("ANA001", "unsupported-op", "an operator numsentry has no rule for",
         "Its outputs are assumed to be anything ([-inf, inf], maybe NaN), which is sound but "
         "can cause later alarms. `--unsupported error` makes this an error.",
         "a custom-domain op, or an op not yet in `numsentry ops`",
         "open an issue; meanwhile give downstream tensors ranges or accept the alarms"),
]}


def get_rule(code: str) -> Rule:
    """Look up a rule by code (``NUM001``) or name (``log-nonpositive``)."""
    c = code.strip()
    if c.upper() in RULES:
        return RULES[c.upper()]
    for r in RULES.values():
        if r.name == c.lower():
            return r
    raise UserError(f"unknown rule {code!r}", hint=f"known rules: {', '.join(RULES)}")


def select_rules(select: list[str] | None, ignore: list[str] | None) -> set[str]:
    """Codes enabled by ``--select`` / ``--ignore`` (prefixes allowed: ``NUM``, ``NUM00``)."""

    def expand(items: list[str]) -> set[str]:
        out: set[str] = set()
        for item in items:
            for part in item.split(","):
                p = part.strip()
                if not p:
                    continue
                if p.upper() == "ALL":
                    out |= set(RULES)
                    continue
                matched = {c for c, r in RULES.items() if c.startswith(p.upper()) or r.name == p.lower()}
                if not matched:
                    raise UserError(f"unknown rule or prefix {p!r}", hint=f"known rules: {', '.join(RULES)}")
                out |= matched
        return out

    enabled = expand(select) if select else set(RULES)
    if ignore:
        enabled -= expand(ignore)
    return enabled
