"""The house rules of the layout: recipes stand alone, the library never
reaches into a recipe."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.py"))
LIBRARY = sorted((ROOT / "emotion_invariant").rglob("*.py"))


def _imports(tree):
    """Every module name an ``import`` or ``from ... import`` names."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""


def recipe_violations(path):
    """What in one recipe script loads another recipe."""
    tree = ast.parse(path.read_text(), str(path))
    scripts = {p.stem for p in RECIPES}
    found = [
        f"imports {name}"
        for name in _imports(tree)
        if name.split(".")[0] in scripts | {"recipes"}
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in (
            "spec_from_file_location",
            "run_path",
        ):
            found.append(f"loads a script by path ({node.attr})")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append("edits or reads sys.path")
    return found


def library_violations(path):
    """The recipe imports of one library module."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"imports {name}"
        for name in _imports(tree)
        if name.split(".")[0] == "recipes"
    ]


def test_no_recipe_imports_another_recipe():
    bad = {
        str(path.relative_to(ROOT)): found
        for path in RECIPES
        if (found := recipe_violations(path))
    }
    assert RECIPES and not bad, bad


def test_no_library_module_imports_a_recipe():
    bad = {
        str(path.relative_to(ROOT)): found
        for path in LIBRARY
        if (found := library_violations(path))
    }
    assert LIBRARY and not bad, bad


def test_the_checks_see_each_way_of_loading_a_recipe(tmp_path):
    cases = {
        "sys.path.insert(0, '.')\nfrom evaluate import evaluate\n": 2,
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('t', 'train.py')\n": 1,
        "from recipes.speaker_verification import train\n": 1,
        "import os\nfrom emotion_invariant.seeding import step_seed\n": 0,
    }
    for source, n in cases.items():
        path = tmp_path / "script.py"
        path.write_text(source)
        assert len(recipe_violations(path)) == n, source
    path.write_text("from recipes.emotion_recognition.train import build\n")
    assert library_violations(path) == [
        "imports recipes.emotion_recognition.train"
    ]


#: The layers of the package, from the bottom up (docs/architecture.md): a
#: module imports from its own layer or those below, never above; the most
#: specific entry names a module's layer. The recipes are above them all.
LAYERS = (
    (
        "atomic",
        "messages",
        "seeding",
        "memory",
        "hparams",
        "runlock",
        "checkpoints",
        "deprecation",
        "comparison",
        "distributed",
    ),
    ("augment", "losses", "data", "corpora", "scoring"),
    ("models", "backend"),
    ("emotion", "verification", "clustering", "experiment", "suite"),
    # Above the tasks: what writes model folders of every task, and the
    # old paths of moved modules (aliases of anything, for one release).
    (
        "models.export",
        "models.export_files",
        "models.export_check",
        "backend.fitting",
        "backend.__main__",
        "utils",
        "compare",
        "score",
        "export",
        "verify",
        "cluster",
        "data.corpora",
        "data.prepare",
        "data.synth",
        "data.audio_check",
    ),
)


def _modules():
    """Dotted name -> path of every library module."""
    found = {}
    for path in LIBRARY:
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name, modules):
    """The library module an imported name lives in (longest prefix)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_graph():
    """Library module -> the library modules it imports (lazy ones too)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {
            found
            for target in targets
            if target.startswith("emotion_invariant")
            and (found := _resolve(target, modules)) not in (None, name)
        }
    return graph


def layer_of(module):
    """The index in :data:`LAYERS` of a dotted library module name."""
    rest = module.split(".", 1)[1] if "." in module else ""
    best, depth = None, -1
    for k, names in enumerate(LAYERS):
        for entry in names:
            if (rest == entry or rest.startswith(entry + ".")) and len(
                entry
            ) > depth:
                best, depth = k, len(entry)
    return best


def cycles(graph):
    """The import circles of ``graph`` (strongly connected components)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_library_module_has_a_layer():
    unplaced = [m for m in _modules() if m != "emotion_invariant"]
    unplaced = [m for m in unplaced if layer_of(m) is None]
    assert not unplaced, unplaced


def test_no_module_imports_a_layer_above_its_own():
    graph = import_graph()
    upward = sorted(
        f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})"
        for a, targets in graph.items()
        for b in targets
        if b != "emotion_invariant" and layer_of(b) > layer_of(a)
    )
    assert not upward, upward


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_layer_checks_see_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]
    assert layer_of("emotion_invariant.scoring.metrics") == 1
    assert layer_of("emotion_invariant.models.export") == 4
    assert layer_of("emotion_invariant.models.embedder") == 2
