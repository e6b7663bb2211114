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
        "import os\nfrom emotion_invariant.utils import step_seed\n": 0,
    }
    for source, n in cases.items():
        path = tmp_path / "script.py"
        path.write_text(source)
        assert len(recipe_violations(path)) == n, source
    path.write_text("from recipes.emotion_recognition.train import build\n")
    assert library_violations(path) == [
        "imports recipes.emotion_recognition.train"
    ]
