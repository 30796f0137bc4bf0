"""Configuration matrix: sets, files, validation, availability, attribution pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from numsentry.deviation.attribution import reference_of
from numsentry.deviation.configs import (
    ENV_KNOBS,
    KNOBS,
    availability,
    build_set,
    knob_diff,
    load_matrix,
    make_config,
    select,
)
from numsentry.errors import UserError


def test_default_set_varies_one_knob_at_a_time() -> None:
    m = build_set("default")
    names = [c.name for c in m.configs]
    assert len(names) == len(set(names)) and m.baseline == "ort"
    assert {"ort", "torch", "numpy", "float64"} <= set(names)
    for c in m.configs:
        assert len(c.knobs()) <= 1, c.name
        found = reference_of(c, m.configs, m.baseline)
        if c.name != "ort":  # every other config measures one knob (or the runtime) against a reference
            assert found is not None, c.name
    assert reference_of(m.get("torch/threads=1"), m.configs, "ort") == ("threads", m.get("torch"))
    assert reference_of(m.get("numpy"), m.configs, "ort") == ("runtime", m.get("ort"))


def test_all_set_covers_every_knob() -> None:
    m = build_set("all", repeats=2)
    tried = {k for c in m.configs for k in c.knobs()}
    assert tried == set(KNOBS)
    assert all(c.repeats == 2 for c in m.configs)
    assert not any(c.runtime == "float64" and c.dtype for c in m.configs)


def test_env_of_knobs() -> None:
    c = make_config("torch", {"threads": 2, "isa": "avx2", "aten": "DEFAULT", "mkl_cbwr": "compatible"})
    env = c.env()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env["ATEN_CPU_CAPABILITY"] == "default"
    assert env["MKL_CBWR"] == "COMPATIBLE"
    assert set(env) <= set(ENV_KNOBS)
    assert make_config("numpy", {"openblas_coretype": "haswell"}).env() == {"OPENBLAS_CORETYPE": "Haswell"}
    assert make_config("torch", {"onednn": "off"}).onednn is False
    assert make_config("torch", {"dtype": "float32"}).name == "torch"  # the model's own dtype is the default


@pytest.mark.parametrize(("runtime", "knobs", "msg"), [
    ("tensorflow", {}, "unknown runtime"),
    ("torch", {"colour": 1}, "unknown knob"),
    ("onnxruntime", {"isa": "AVX2"}, "does not apply"),
    ("numpy", {"ort_opt": "all"}, "does not apply"),
    ("torch", {"threads": 0}, "positive integer"),
    ("torch", {"isa": "AVX9000"}, "not one of"),
    ("torch", {"dtype": "int8"}, "not one of"),
])
def test_invalid_configs(runtime: str, knobs: dict[str, object], msg: str) -> None:
    with pytest.raises(UserError, match=msg):
        make_config(runtime, knobs)


def test_matrix_files(tmp_path: Path) -> None:
    y = tmp_path / "m.yaml"
    y.write_text("baseline: torch\nrepeats: 2\nconfigs:\n"
                 "  - {runtime: torch, vary: {threads: [1, 2]}}\n"
                 "  - {runtime: numpy, matrix: {dtype: [float16, bfloat16], batch: [1, 4]}}\n"
                 "  - {runtime: fp64, name: ref}\n")
    m = load_matrix(str(y))
    assert m.baseline == "torch"
    assert [c.name for c in m.configs][:3] == ["torch", "torch/threads=1", "torch/threads=2"]
    assert sum(c.runtime == "numpy" for c in m.configs) == 4
    assert m.get("ref").runtime == "float64"
    assert all(c.repeats == 2 for c in m.configs)
    t = tmp_path / "m.toml"
    t.write_text('include = "default"\n[[configs]]\nruntime = "onnxruntime"\nort_opt = "extended"\n')
    mt = load_matrix(str(t))
    assert "ort/ort_opt=extended" in [c.name for c in mt.configs]
    assert len(mt.configs) == len(build_set("default").configs) + 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("configs: [{runtime: torch, isa: [AVX2]}]\n")
    with pytest.raises(UserError):
        load_matrix(str(bad))
    bad.write_text("baseline: nope\nconfigs: [{runtime: torch}]\n")
    with pytest.raises(UserError, match="no configuration named"):
        load_matrix(str(bad))
    bad.write_text("confgs: []\n")
    with pytest.raises(UserError, match="unknown keys"):
        load_matrix(str(bad))
    with pytest.raises(UserError, match="no such"):
        load_matrix(str(tmp_path / "missing.yaml"))


def test_select_globs() -> None:
    m = build_set("default")
    s = select(m, only=["torch*"], skip=["*dtype*"], repeats=1)
    assert s.configs and all(c.name.startswith("torch") and "dtype" not in c.name for c in s.configs)
    assert s.baseline == "torch" and all(c.repeats == 1 for c in s.configs)
    assert select(m, only=["ort,float64"]).baseline == "ort"
    with pytest.raises(UserError, match="matches no"):
        select(m, only=["nothing*"])


def test_availability_uses_cpu_flags() -> None:
    avx2_only = {"sse4_1", "sse4_2", "avx", "avx2", "fma"}
    assert availability(make_config("torch", {"isa": "AVX2"}), avx2_only, "x86_64") is None
    why = availability(make_config("torch", {"isa": "AVX512_CORE"}), avx2_only, "x86_64")
    assert why is not None and "avx512f" in why
    assert availability(make_config("torch", {"aten": "default"}), set(), "aarch64") is None
    why = availability(make_config("torch", {"aten": "avx2"}), set(), "aarch64")
    assert why is not None and "x86-64" in why
    why = availability(make_config("numpy", {"openblas_coretype": "SkylakeX"}), avx2_only, "x86_64")
    assert why is not None and "OPENBLAS_CORETYPE" in why


def test_availability_of_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    assert availability(make_config("torch", {}), set(), "x86_64") == "torch is not installed"
    assert availability(make_config("numpy", {}), set(), "x86_64") is None


def test_knob_diff() -> None:
    a, b = make_config("torch", {"threads": 1}), make_config("torch", {"threads": 1, "isa": "AVX2"})
    assert knob_diff(a, b) == {"isa": (None, "AVX2")}
    assert "runtime" in knob_diff(a, make_config("numpy", {"threads": 1}))
