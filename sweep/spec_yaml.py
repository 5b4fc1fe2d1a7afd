"""Reading YAML safely: every YAML file the tool reads (sweep specs, saved specs) goes through :func:`load_yaml`,
which refuses duplicate keys, deep nesting and alias bombs with one ``FILE:LINE:COL: ...`` line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sweep.spec_values import SpecError


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    """``SPEC.yaml:LINE:COL: not valid YAML (problem)``, 1-based, where the parser says where it stopped."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or getattr(e, "context", None)
    if problem is None:
        lines = str(e).strip().splitlines()
        problem = lines[0] if lines else type(e).__name__
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: not valid YAML ({problem})"


MAX_YAML_DEPTH = 100  # nested mappings / lists; a real spec nests fewer than 10
MAX_YAML_VALUES = 100_000  # values once aliases are expanded (the spec is stored expanded); a real spec has < 1,000


class _SpecYamlError(yaml.YAMLError):
    """A YAML document that parses but is refused: a key given twice in one mapping, or nesting too deep."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML leaves that to the loader, and
    PyYAML keeps the last) and nesting deeper than ``MAX_YAML_DEPTH`` (PyYAML recurses once per level). Merge keys
    (``<<: *anchor``) may still be overridden by the mapping's own keys, as YAML defines."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _SpecYamlError(mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    continue
                if seen is not None:
                    raise _SpecYamlError(
                        key_node.start_mark, f"key {key!r} appears twice (first at line {seen.line + 1})"
                    )
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_aliases(root: yaml.Node) -> None:
    """Aliases (``*name``) share a node: refuse a value that contains itself (it cannot be stored), one that nests
    deeper than ``MAX_YAML_DEPTH`` through aliases, and a document that expands to more than ``MAX_YAML_VALUES``
    values (a few lines of aliases can stand for billions)."""
    seen: dict[int, tuple[int, int]] = {}  # node -> (values once expanded, levels)
    active: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        # an alias names an earlier node, measured before, so this recursion is only as deep as the document's text
        key = id(node)
        if key in seen:
            return seen[key]
        if key in active:
            raise _SpecYamlError(node.start_mark, "a value contains itself through an alias")
        active.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        size, levels = 1, 1
        for child in children:
            child_size, child_levels = measure(child)
            size, levels = size + child_size, max(levels, child_levels + 1)
            if levels > MAX_YAML_DEPTH:
                raise _SpecYamlError(node.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels (through aliases)")
            if size > MAX_YAML_VALUES:
                raise _SpecYamlError(
                    node.start_mark, f"expands to more than {MAX_YAML_VALUES:,} values (through aliases)"
                )
        active.discard(key)
        seen[key] = (size, levels)
        return seen[key]

    measure(root)


def load_yaml(text: str, where: str | Path) -> Any:
    """Parse the YAML ``text`` of file ``where`` with :class:`SpecLoader`; every problem is one SpecError line
    ``FILE:LINE:COL: ...``. Every YAML file the tool reads goes through here."""
    try:
        loader = SpecLoader(text)  # the reader checks the characters here (a control character: ReaderError)
    except yaml.YAMLError as e:
        raise SpecError(_yaml_error(Path(where), e)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    except _SpecYamlError as e:
        raise SpecError(f"{where}:{e.mark.line + 1}:{e.mark.column + 1}: {e.message}") from None
    except yaml.YAMLError as e:
        raise SpecError(_yaml_error(Path(where), e)) from None
    except RecursionError:  # a bound above should stop it first; a traceback here would say nothing useful
        raise SpecError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()
