"""No import cycles in toolkit/ and apps/ (lazy imports inside functions count), and the checker finds them."""

from __future__ import annotations

from spine_checks import import_cycles, import_graph, module_files


def test_no_import_cycles():
    found = import_cycles("toolkit", "apps")
    assert not found, "Import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_checker_sees_lazy_relative_and_package_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("def export():\n    from .sub import conv\n")  # lazy, relative
    (pkg / "sub" / "__init__.py").write_text("from .runner import Runner\n")  # a package __init__
    (pkg / "sub" / "conv.py").write_text("")
    (pkg / "sub" / "runner.py").write_text("from ..base import export\n")
    (pkg / "free.py").write_text("import pkg.sub.conv\n")
    graph = import_graph(module_files("pkg", root=tmp_path))
    assert graph["pkg.base"] == {"pkg.sub", "pkg.sub.conv"} and graph["pkg.sub.runner"] == {"pkg.base"}
    assert graph["pkg.free"] == {"pkg.sub", "pkg.sub.conv"}
    assert import_cycles("pkg", root=tmp_path) == [["pkg.base", "pkg.sub", "pkg.sub.runner", "pkg.base"]]
