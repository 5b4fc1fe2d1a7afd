"""What a spec file may be before validation: YAML without duplicate keys, nested at most MAX_YAML_DEPTH levels,
readable; sweep names that stay under the storage; sizes that fit in this machine's memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from featherweight_core.students.measure import memory_bytes
from sweep.spec import MAX_YAML_DEPTH, SpecError, check_sweep_name, load_spec, load_yaml, validate

SPEC = """name: t
storage: runs/t
tasks:
  synthetic:
    data: synthetic
grid:
  archs: [ffn]
  embeddings: [hash]
  dims: [8]
  vocab_sizes: [100]
training:
  max_epochs: 1
  patience: 2
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\nstorage: x\nname: u\n", "s.yaml:3:1: key 'name' appears twice (first at line 1)"),
        (SPEC + "  max_epochs: 3\n", "s.yaml:14:3: key 'max_epochs' appears twice (first at line 12)"),
        ("grid: {dims: [8], dims: [16]}\n", "s.yaml:1:19: key 'dims' appears twice (first at line 1)"),
        ("a:\n  - {x: 1}\n  - {y: 1, y: 2}\n", "s.yaml:3:12: key 'y' appears twice (first at line 3)"),
        ("a:\n  b:\n    c:\n      d: 1\n      d: 2\n", "s.yaml:5:7: key 'd' appears twice (first at line 4)"),
        ("1: a\n1: b\n", "s.yaml:2:1: key 1 appears twice (first at line 1)"),
    ],
    ids=["top-level", "training", "flow", "in-a-list", "deep", "int-key"],
)
def test_a_key_given_twice_is_refused_at_any_depth(text, message):
    with pytest.raises(SpecError) as e:
        load_yaml(text, "s.yaml")
    assert str(e.value) == message


def test_distinct_keys_and_merge_keys_still_load():
    # '1' and 1 are different keys; a merge key's values may be overridden by the mapping's own keys (YAML merge)
    assert load_yaml("1: a\n'1': b\n", "s.yaml") == {1: "a", "1": "b"}
    merged = load_yaml("base: &b {lr: 1, patience: 2}\ntraining:\n  <<: *b\n  lr: 3\n", "s.yaml")
    assert merged["training"] == {"lr": 3, "patience": 2}


def test_load_spec_refuses_a_duplicate_key_in_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC + "  max_epochs: 3\n")
    with pytest.raises(SpecError, match=r"s\.yaml:14:3: key 'max_epochs' appears twice \(first at line 12\)$"):
        load_spec(path)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20000 + "]" * 20000,
        "a: " + "{a: " * 20000 + "1" + "}" * 20000,
        "".join("  " * i + "a:\n" for i in range(3000)),
        "x:\n" + "".join("  " * i + "- \n" for i in range(1, 3000)),
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings", "block-lists"],
)
def test_deep_nesting_is_one_error_not_a_recursion_error(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=rf"deep\.yaml:\d+:\d+: nested deeper than {MAX_YAML_DEPTH} levels$"):
        load_spec(path)


def test_nesting_up_to_the_bound_loads():
    value = load_yaml("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "s.yaml")
    for _ in range(MAX_YAML_DEPTH - 1):
        value = value[0]
    assert value == []
    with pytest.raises(SpecError, match="nested deeper"):
        load_yaml("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), "s.yaml")


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux's /proc/self/mem")
def test_a_spec_that_cannot_be_read_is_one_error():
    # a regular file whose read fails with EIO for every user, root included (chmod 000 does not stop root)
    with pytest.raises(SpecError, match=r"^/proc/self/mem: cannot read the sweep spec \(Input/output error\)$"):
        load_spec("/proc/self/mem")


@pytest.mark.parametrize("name", ["..", ".", "../other/x", "a/b", "/abs", "", "a b", "x\n"])
def test_sweep_names_that_leave_the_storage_are_refused(name):
    with pytest.raises(SpecError, match=r"^NAME: expected a non-empty name of letters"):
        check_sweep_name(name, "NAME")


def test_sweep_names_of_letters_digits_dash_underscore_dot_pass():
    for name in ("t", "sst2-thesis_v1.2", "été", "a..b"):
        assert check_sweep_name(name, "name") == name


def test_a_spec_named_dot_dot_is_refused():
    raw = load_yaml(SPEC.replace("name: t", "name: '..'"), "s.yaml")
    with pytest.raises(SpecError, match=r"^name: expected a non-empty name .* got '\.\.'$"):
        validate(raw)


def test_sizes_that_cannot_fit_name_the_key_and_value():
    with pytest.raises(SpecError) as e:
        validate(load_yaml(SPEC.replace("dims: [8]", "dims: [8, 1000000000]"), "s.yaml"))
    msg = str(e.value)
    assert msg.startswith("grid.dims[1]: 1000000000 (task synthetic, arch ffn, embedding hash, dim 1000000000")
    assert "a student of 110,000,000,602 parameters needs about 1.8 TB (4 float32 copies" in msg
    assert msg.endswith("of memory")
    with pytest.raises(SpecError, match=r"^grid\.vocab_sizes\[1\]: 100000000000 \(task synthetic"):
        validate(load_yaml(SPEC.replace("vocab_sizes: [100]", "vocab_sizes: [100, 100000000000]"), "s.yaml"))
    task_grid = SPEC.replace("    data: synthetic\n", "    data: synthetic\n    grid: {dims: [4, 1000000000000]}\n")
    with pytest.raises(SpecError, match=r"^tasks\.synthetic\.grid\.dims\[1\]: 1000000000000 \("):
        validate(load_yaml(task_grid, "s.yaml"))


def test_data_sizes_that_cannot_fit_name_the_key_and_value():
    options = SPEC.replace("    data: synthetic\n", "    data: synthetic\n    data_options: {n_dev: 10000000000}\n")
    with pytest.raises(SpecError, match=r"^tasks\.synthetic\.data_options\.n_dev: 10000000000: 10,000,000,000 ex"):
        validate(load_yaml(options, "s.yaml"))
    boot = SPEC.replace(
        "    data: synthetic\n",
        "    data: synthetic\n    data_options: {n_train: 1000}\n    teacher: small\n    bootstrap: {n: 1000000000}\n",
    )
    with pytest.raises(SpecError, match=r"^tasks\.synthetic\.bootstrap\.n: 1000000000 \(1,000 training example"):
        validate(load_yaml(boot, "s.yaml"))


def test_sizes_that_fit_pass():
    # the bound is this machine's memory: a grid of realistic students and a large synthetic set pass
    raw = load_yaml(
        SPEC.replace("dims: [8]", "dims: [8, 300]")
        .replace("archs: [ffn]", "archs: [ffn, bilstm, rnn]")
        .replace("vocab_sizes: [100]", "vocab_sizes: [100, 50000]")
        .replace("    data: synthetic\n", "    data: synthetic\n    data_options: {n_train: 100000}\n"),
        "s.yaml",
    )
    assert memory_bytes() > 2 * 10**9  # the students above need well under 1 GB to train
    assert len(validate(raw).distill_trials()) == 3 * 2 * 2


LAUGHS = "x: &a0 [v, v, v, v, v, v, v, v, v, v]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)  # 10 lines that stand for 10^10 values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LAUGHS, "s.yaml:5:5: expands to more than 100,000 values (through aliases)"),
        ("a: &a [*a]\n", "s.yaml:1:4: a value contains itself through an alias"),
        ("a: &a {b: [1, *a]}\n", "s.yaml:1:4: a value contains itself through an alias"),
        (
            "".join(f"a{i}: &a{i} [{f'*a{i - 1}' if i else 'x'}]\n" for i in range(150)),
            "s.yaml:1:1: nested deeper than 100 levels (through aliases)",
        ),
    ],
    ids=["billion-laughs", "self-list", "self-mapping", "alias-chain"],
)
def test_aliases_that_expand_without_bound_or_contain_themselves_are_refused(text, message):
    with pytest.raises(SpecError) as e:
        load_yaml(text, "s.yaml")
    assert str(e.value) == message


def test_shared_values_within_the_bound_load():
    text = "x: &x [1, 2, 3]\n" + "".join(f"k{i}: *x\n" for i in range(1000))
    loaded = load_yaml(text, "s.yaml")
    assert loaded["k999"] == [1, 2, 3]


def test_free_text_keys_hold_text(tmp_path):
    huge = SPEC.replace("name: t", "name: t\ndescription: [1, 2]")
    with pytest.raises(SpecError, match=r"^description: expected text, got \[1, 2\]$"):
        validate(load_yaml(huge, "s.yaml"))
    note = SPEC.replace(
        "    data: synthetic\n", "    data: synthetic\n    baselines: [{name: b, score: 0.5, note: {a: 1}}]\n"
    )
    with pytest.raises(SpecError, match=r"^tasks\.synthetic\.baselines\[0\]\.note: expected text, got \{'a': 1\}$"):
        validate(load_yaml(note, "s.yaml"))
    assert validate(load_yaml(SPEC.replace("name: t", "name: t\ndescription:"), "s.yaml")).raw["description"] is None
